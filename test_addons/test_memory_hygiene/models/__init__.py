from . import test_memory_batch_record
from . import test_memory_leak_job
