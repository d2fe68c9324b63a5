from . import test_settings
from . import test_cron_run
from . import test_leak_report
