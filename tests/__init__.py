from . import test_settings
from . import test_harness
from . import test_memory_snapshot
from . import test_endpoints
from . import test_cron_run
from . import test_leak_report
