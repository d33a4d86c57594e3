"""Rewards (seeds: marketing-service-readme.md, redeem-code-design-article.md): reward definitions, stock that
never over-issues (reservations, shards), reward grants, and redeem codes from batch generation to redemption.

Other capabilities call it in-process through `marketing.rewards.api` only."""
