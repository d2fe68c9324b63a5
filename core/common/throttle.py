"""The one "at most every N seconds" helper: :class:`Throttle`."""

import os
import time


class Throttle:
    """Says when something is due again in this process; due at once at first.

    ``due()`` asks, ``reschedule(interval)`` sets the next time; ``take()``
    does both with the throttle's own ``interval`` (at most once per
    ``interval`` seconds). Times are ``clock()`` seconds (``time.monotonic``
    unless given), or the ``now`` passed. The state is reset in a forked
    child, so a worker never inherits its parent's schedule.

    >>> throttle = Throttle()
    >>> throttle.due(now=1000.0)
    True
    >>> throttle.reschedule(300, now=1000.0)
    >>> throttle.due(now=1200.0), throttle.due(now=1300.0)
    (False, True)
    >>> every_10 = Throttle(10)
    >>> [every_10.take(now=t) for t in (0.0, 5.0, 10.0, 12.0)]
    [True, False, True, False]
    """

    def __init__(self, interval=None, clock=None):
        self.interval = interval
        self.clock = clock or time.monotonic
        self._pid = None
        self._next = 0.0

    def due(self, now=None):
        """True when the next time has come (always at first, and in a newly forked process)."""
        if os.getpid() != self._pid:
            self._pid, self._next = os.getpid(), 0.0
        return (self.clock() if now is None else now) >= self._next

    def reschedule(self, interval=None, now=None):
        """Due again ``interval`` seconds (default: the throttle's own) from now."""
        self._pid = os.getpid()
        self._next = (self.clock() if now is None else now) + (
            self.interval if interval is None else interval
        )

    def take(self, now=None):
        """True at most once per ``interval`` seconds: when due, and then rescheduled."""
        now = self.clock() if now is None else now
        if not self.due(now):
            return False
        self.reschedule(now=now)
        return True
