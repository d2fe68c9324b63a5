import logging

from odoo import models

from .. import odoo_runtime
from .ir_cron import ACTIVE_PROFILE

_logger = logging.getLogger(__name__)


class IrActionsServer(models.Model):
    _inherit = "ir.actions.server"

    def run(self):
        """Tell a profiled cron run how big the record cache was when its server action returned.

        Odoo commits right after (19.0, in ``_callback``), and a commit
        empties the record cache: this is the last moment it can be seen.

        No admin check here, on purpose: this is Odoo's entry point of every
        server action, run by every kind of user (Odoo checks the action's
        groups itself). The override reads and changes nothing of the addon
        for its caller: it only fills in the probe that a profiled cron run
        set in this very thread (``ACTIVE_PROFILE``), and nothing when none is.
        """
        result = super().run()
        probe = ACTIVE_PROFILE.get()
        if probe is not None and probe["cache_size"] is None and probe["action_id"] in self.ids:
            try:
                probe["cache_size"] = odoo_runtime.record_cache_size(self.env)
            except Exception:  # noqa: BLE001 - a missing figure never fails the run
                _logger.debug("Memory profiler: cannot size the record cache", exc_info=True)
        return result
