"""The batched-cron engine: keyset batches, poison isolation, faults, budgets."""
