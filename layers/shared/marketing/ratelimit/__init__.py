"""Per-user rate limits of the routes end users write to (`POST /v1/events`, `POST /tracks`)."""
