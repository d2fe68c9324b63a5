import logging

from odoo import models

from .. import compat
from .ir_cron import ACTIVE_PROFILE

_logger = logging.getLogger(__name__)


class IrActionsServer(models.Model):
    _inherit = "ir.actions.server"

    def run(self):
        """Tell a profiled cron run how big the record cache was when its server action returned.

        Odoo commits right after (19.0, in ``_callback``), and a commit
        empties the record cache: this is the last moment it can be seen.
        """
        result = super().run()
        probe = ACTIVE_PROFILE.get()
        if probe is not None and probe["cache_size"] is None and probe["action_id"] in self.ids:
            try:
                probe["cache_size"] = compat.record_cache_size(self.env)
            except Exception:  # noqa: BLE001 - a missing figure never fails the run
                _logger.debug("Memory profiler: cannot size the record cache", exc_info=True)
        return result
