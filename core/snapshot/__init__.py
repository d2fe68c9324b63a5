"""Worker memory snapshots: what a snapshot records (sampler) and who grows (trends)."""
