import functools
import logging

from odoo import models
from odoo.http import request

from .. import odoo_runtime
from ..core.common import params
from . import memory_snapshot

_logger = logging.getLogger(__name__)


class IrHttp(models.AbstractModel):
    _inherit = "ir.http"

    @classmethod
    def _post_dispatch(cls, response):
        super()._post_dispatch(response)
        # An HTTP worker samples itself after its first request, then at most once
        # per interval: the check is a clock comparison; the sample runs once the
        # response is sent, in its own transaction.
        try:
            if not memory_snapshot.self_sample_due():
                return
            # The sampling interval is read by whoever's request is observed.
            memory_snapshot.SELF_SAMPLE_THROTTLE.reschedule(
                odoo_runtime.setting(request.env, params.SNAPSHOT_INTERVAL) * 60
            )
            extra = {"record_cache_size": odoo_runtime.record_cache_size(request.env)}
            response.call_on_close(functools.partial(memory_snapshot.sample_after_request, request.db, extra))
        except Exception:
            _logger.exception("memory_hygiene: could not schedule this worker's sample")
