from . import memory_batch_mixin
from . import memory_batch_position
from . import memory_snapshot
from . import ir_http
from . import res_config_settings
