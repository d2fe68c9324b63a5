"""Accounted rows kept in memory until another store writes them: one round trip saved per run.

A run that was accounted but not charged (a healthy action's run, no C heap read)
cannot change a verdict: storing it needs nothing but its ``INSERT``. The
``INSERT`` itself is cheap; the round trip to PostgreSQL that carries it is most
of an uncharged run's cost (0.2 to 0.5 ms of about 1 ms). So such rows wait
here, per database, and ride on the next store of that database in this process
that sends SQL anyway, in its one statement, or are written by the store that
finds ``max_rows`` waiting or the oldest older than ``max_age`` seconds (a
bound checked at the next store: a database whose runs stop keeps its rows
until then, or until the process exits).

What a process holds is lost if it dies without exiting (SIGKILL, the kernel's
OOM killer): at most ``max_rows`` uncharged rows of each database, none of them
evidence for a verdict. A process that exits writes them (:meth:`DeferredRows.drain`,
called at exit by the model side).

    >>> clock = iter([0.0, 1.0, 2.0, 500.0, 800.0]).__next__
    >>> rows = DeferredRows(max_rows=3, max_age=300.0, clock=clock)
    >>> rows.defer("db", [{"id": 1}]), rows.defer("db", [{"id": 2}])
    (True, True)
    >>> rows.waiting("db")
    [{'id': 1}, {'id': 2}]
    >>> rows.defer("db", [{"id": 3}, {"id": 4}])       # 4 would wait: written now, with the 2 waiting
    False
    >>> rows.take("db")
    [{'id': 1}, {'id': 2}]
    >>> rows.defer("db", [{"id": 5}]), rows.defer("db", [{"id": 6}])   # the oldest waited 300 s
    (True, False)
"""

import threading
import time

#: Rows a database may have waiting in one process, by default.
MAX_ROWS = 20
#: Seconds the oldest waiting row may wait before the next store writes it, by default.
MAX_AGE = 900.0


class DeferredRows:
    """Rows waiting to be written, per database: ``{db: [row, ...]}``, thread-safe.

    :param max_rows: most rows a database may have waiting (0: nothing ever waits).
    :param max_age: seconds after which the next store writes the waiting rows.
    :param clock: seconds, monotonic (``time.monotonic``).
    """

    def __init__(self, max_rows=MAX_ROWS, max_age=MAX_AGE, clock=time.monotonic):
        self.max_rows = max_rows
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._rows = {}
        self._since = {}

    def defer(self, db, rows):
        """Keep ``rows`` of ``db`` waiting: True; or False: the caller writes them now, with :meth:`take`'s.

        False when they would make more than ``max_rows`` wait, or the oldest
        waiting row is ``max_age`` seconds old (checked now: a database whose
        runs stop keeps its rows until its next store or the process's exit).
        """
        with self._lock:
            waiting = self._rows.get(db, [])
            now = self._clock()
            if len(waiting) + len(rows) > self.max_rows or (
                waiting and now - self._since[db] >= self.max_age
            ):
                return False
            if not waiting:
                self._since[db] = now
            self._rows[db] = waiting + list(rows)
            return True

    def take(self, db):
        """The rows of ``db`` waiting, oldest first, no longer waiting: a list (empty when none)."""
        with self._lock:
            self._since.pop(db, None)
            return self._rows.pop(db, [])

    def put_back(self, db, rows):
        """Put ``rows`` taken from ``db`` back in front of those waiting since (their write was undone).

        They may make more than ``max_rows`` wait: the next :meth:`defer` then
        says to write them.
        """
        if not rows:
            return
        with self._lock:
            self._rows[db] = list(rows) + self._rows.get(db, [])
            self._since.setdefault(db, self._clock())

    def drain(self):
        """Every database's waiting rows, no longer waiting: ``{db: [row, ...]}``."""
        with self._lock:
            rows, self._rows, self._since = self._rows, {}, {}
            return rows

    def clear_in_child(self):
        """Forget every waiting row, in a child just forked: its parent writes them.

        Takes no lock: one held by another thread of the parent at fork time stays
        held in the child forever, so the child gets a new one.
        """
        self._lock = threading.Lock()
        self._rows, self._since = {}, {}

    def waiting(self, db):
        """The rows of ``db`` waiting, oldest first: a list (a copy; empty when none)."""
        with self._lock:
            return list(self._rows.get(db, ()))
