"""CPS affiliate distribution (seed: cps-distribution-article.md): distributors and their invite chain,
orders from CPS platforms (signed webhooks and scheduled pulls), and the append-only commission ledger."""
