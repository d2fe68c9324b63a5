from core.common.throttle import Throttle


def test_throttle_is_per_process():
    throttle = Throttle()
    assert throttle.due(now=10.0)
    throttle.reschedule(60, now=10.0)
    assert not throttle.due(now=20.0)
    throttle._pid = -1  # as seen from a forked child
    assert throttle.due(now=20.0)
