"""Real-time statistics (seed: realtime-stats-mq-spec.md): events in, counted exactly once per day and topic
by an SQS consumer, read back as daily series and totals."""
