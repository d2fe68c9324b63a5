from . import test_batch_mixin
from . import test_batch_cron
from . import test_batch_faults
from . import test_leak_profiler
from . import test_profiler_server
from . import test_real_server
from . import test_batch_server
from . import test_lifecycle_server
