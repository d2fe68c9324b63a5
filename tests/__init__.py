from . import test_settings
from . import test_diagnostics
from . import test_tour
from . import test_harness
from . import test_memory_snapshot
from . import test_endpoints
from . import test_diagnostics_server
