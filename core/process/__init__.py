"""One Odoo process: which ones the server has (tree), what Odoo measures against its limits (limits),
its figures read with psutil (reading).
"""
