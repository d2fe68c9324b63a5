"""Pure-Python logic of memory_hygiene.

Nothing in this package imports ``odoo``: it is tested with plain pytest and no
database (``core/tests``), and the ORM models delegate to it.
"""
