"""The diagnostics page: config advisor, heap, ORM caches, PostgreSQL pressure, server-wide scope, the
signal policy, stack dumps.
"""
