from . import test_settings
from . import test_diagnostics
from . import test_tour
