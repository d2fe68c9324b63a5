"""The cron-leak profiler: every run accounted, traced runs, holders, the verdict."""
