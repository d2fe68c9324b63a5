from . import controllers
from . import models
from . import worker_lifecycle

worker_lifecycle.install()
