"""The machine and its health: CPUs and memory with their source, the health check, Prometheus metrics."""
