from . import test_memory_batch_record
