"""A worker's life: what it is doing now (its title), why it ended (lifecycle), recycle storms and
scheduled actions that kill their worker (storms).
"""
