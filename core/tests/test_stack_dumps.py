import sys
import threading

from core.diagnostics import stack_dumps


def test_dump_has_odoo_header_for_every_thread():
    ready, stop = threading.Event(), threading.Event()

    def work():
        ready.set()
        stop.wait(10)

    thread = threading.Thread(target=work, name="Worker WorkerHTTP (42) workthread")
    thread.dbname, thread.uid, thread.url = "mydb", 2, "http://odoo/web"
    thread.query_count, thread.query_time, thread.perf_t0 = 7, 0.25, 100.0
    thread.start()
    ready.wait(5)
    try:
        text = stack_dumps.dump(sys._current_frames(), now=101.0)
    finally:
        stop.set()
        thread.join()
    assert "(db:mydb) (uid:2) (url:http://odoo/web) (qc:7 qt:0.250 pt:0.750)" in text
    assert "in work" in text
    assert text.count("# Thread:") >= 2
    assert "(db:n/a) (uid:n/a) (url:n/a) (qc:n/a qt:n/a pt:n/a)" in text  # the main thread


def test_find_record_picks_the_dump_of_one_pid():
    log = "\n".join(
        [
            "2025-01-01 10:00:00,000 11 INFO db odoo.tools.misc: ",
            "# Thread: <A> (db:db) (uid:n/a) (url:n/a) (qc:n/a qt:n/a pt:n/a)",
            'File: "x.py", line 1, in a',
            "2025-01-01 10:00:00,100 12 INFO db odoo.tools.misc: ",
            "# Thread: <B> (db:db) (uid:n/a) (url:n/a) (qc:n/a qt:n/a pt:n/a)",
            'File: "y.py", line 2, in b',
            "2025-01-01 10:00:00,200 12 INFO db odoo.service.server: Worker alive ",
        ]
    )
    dump = stack_dumps.find_record(log, 12, "odoo.tools.misc", "# Thread:")
    assert "<B>" in dump and "<A>" not in dump and "alive" not in dump
    assert stack_dumps.find_record(log, 13, "odoo.tools.misc", "# Thread:") is None
