"""What every feature of the Odoo-free layer uses: settings, units, a throttle, tracemalloc's owner."""
