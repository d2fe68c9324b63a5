from . import memory_batch_mixin
from . import memory_batch_position
from . import res_config_settings
