from . import memory_batch_mixin
from . import memory_batch_position
from . import memory_cron_run
from . import memory_cron_run_line
from . import memory_leak_report
from . import ir_cron
from . import ir_actions_server
from . import res_config_settings
