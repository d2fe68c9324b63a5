"""What users read is translatable: sentences made through ``env._`` from core's codes, all in the pot."""

import os

from babel.messages.extract import extract_python
from babel.messages.pofile import read_po

from odoo.tests import TransactionCase, tagged

from .. import messages
from ..core.diagnostics import advisor, pgpressure
from ..core.reporting import report as core_report

ADDON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GiB = 1024**3
MiB = 1024**2

SOUND = dict(advisor.DEFAULTS, workers=5, max_cron_threads=1, proxy_mode=True)  # a sound configuration
#: Configurations that between them raise every finding the advisor has, with the host they run on.
CASES = [
    (SOUND, 4, 32 * GiB, {}),
    (dict(SOUND, workers=0, limit_time_real_cron=0), 2, 32 * GiB, {}),
    (dict(SOUND, workers=0, limit_time_real_cron=30, limit_time_real=0), 1, 32 * GiB, {}),
    (dict(SOUND, workers=12, proxy_mode=False, max_cron_threads=0, limit_memory_soft=0), 2, 8 * GiB, {}),
    (dict(SOUND, limit_memory_hard=GiB, limit_time_cpu=300, limit_time_real_cron=0), 4, 13 * GiB, {}),
    (dict(SOUND, limit_memory_soft=int(1.26 * GiB), limit_memory_hard=int(1.3 * GiB)), 4, 32 * GiB, {}),
    (dict(SOUND, limit_memory_soft_gevent=GiB, limit_memory_hard_gevent=512 * MiB), 4, 32 * GiB, {}),
    (dict(SOUND, limit_memory_hard=0, limit_time_worker_cron=0), 4, 32 * GiB, {}),
    (
        dict(SOUND, limit_time_worker_cron=3600, limit_memory_soft=6 * GiB, limit_memory_hard=7 * GiB),
        4,
        24 * GiB,
        {},
    ),
    (dict(SOUND, workers=2, max_cron_threads=2, limit_memory_soft=288 * MiB), 1, 512 * MiB, {}),
    (
        dict(SOUND, workers=4),
        2,
        int(2.5 * GiB),
        {"cpu_source": "container CPU quota", "ram_source": "container limit"},
    ),
    (
        dict(SOUND, limit_memory_soft=2000 * MiB),
        4,
        32 * GiB,
        {"live": {"http": [(300 * MiB, 2100 * MiB)], "master": [(100 * MiB, 200 * MiB)]}},
    ),
    (
        dict(SOUND, db_maxconn=64),
        4,
        32 * GiB,
        {
            "postgres": {
                "max_connections": 100,
                "superuser_reserved_connections": 3,
                "reserved_connections": 2,
            }
        },
    ),
    (dict(SOUND, workers=0, db_maxconn=200), 4, 32 * GiB, {"postgres": {"max_connections": 100}}),
]


def _msgids(path, keywords):
    with open(path, "rb") as file:
        # A call with more arguments than the message (the figures) gives a tuple, the message first.
        return {
            message[0] if isinstance(message, tuple) else message
            for _line, _function, message, _comments in extract_python(file, keywords, [], {})
        }


@tagged("post_install", "-at_install")
class TestMessages(TransactionCase):
    def test_every_advisor_finding_reads_as_sentences(self):
        codes = set()
        for options, cpus, ram, kwargs in CASES:
            for finding in advisor.advise(options, cpus, ram, **kwargs):
                codes.add(finding.code)
                title, advice = messages.advisor_finding(self.env, finding)
                self.assertTrue(title and advice, finding)
                self.assertNotIn("%(", title + advice, finding)
        self.assertLessEqual(
            {"sound", "threaded", "workers_vs_cpu", "proxy_mode", "no_cron", "no_soft", "hard_not_above_soft"}
            | {"hard_close_to_soft", "hard_below_report_floor", "no_hard", "limits_vs_ram", "gap_http"}
            | {
                "above_soft_http",
                "no_time_real",
                "cpu_above_real",
                "no_time_real_cron",
                "threaded_time_limits",
            }
            | {"threaded_cron_time", "no_cron_worker_age", "cron_worker_age", "connections"},
            codes,
        )
        proxy = next(
            f for f in advisor.advise(dict(SOUND, proxy_mode=False), 4, 32 * GiB) if f.code == "proxy_mode"
        )
        self.assertEqual(messages.advisor_finding(self.env, proxy)[0], "workers without proxy_mode")

    def test_every_report_code_reads_as_a_sentence(self):
        say = messages.report_say(self.env)
        self.assertLessEqual(set(core_report.CODES), set(say.codes))
        report = core_report.build_report(
            "prod",
            "now",
            crons=[
                {
                    "id": 7,
                    "name": "Sync",
                    "state": "leaking",
                    "reason": "why",
                    "holders": ["x"],
                    "growth_mb": 1.0,
                }
            ],
            growth=[{"id": 7, "name": "Sync", "growth_mb": 9.0, "share": 90.0, "runs": 2, "fds_kept": 1}],
            processes=[
                {"host": "w", "pid": 4, "kind": "http", "growth_mb": 9.0, "hours": 2.0, "rss_mb": 1.0}
            ],
            near_limit=[
                {"host": "w", "pid": 4, "kind": "http", "soft_limit_pct": 95.0, "vms_mb": 2.0, "rss_mb": 1.0}
            ],
            recycles={"w": 2},
        )
        text = core_report.render_text(report, say)
        self.assertNotIn("%(", text)
        self.assertIn("Advice: RSS grows outside Python's heap", text)
        self.assertIn("2 worker recycle(s) on w", text)

    def test_postgres_notes_read_as_sentences(self):
        tight = {
            "work_mem": ("65536", "kB"),
            "max_connections": ("500", None),
            "shared_buffers": ("16384", "8kB"),
        }
        notes = pgpressure.notes(tight, active=40, ram_bytes=8 * GiB, ram_source="container limit")
        notes += pgpressure.notes({"shared_buffers": ("524288", "8kB")}, active=0, ram_bytes=8 * GiB)
        self.assertEqual(
            [note.code for note in notes],
            ["work_mem_worst", "work_mem_active", "shared_buffers_low", "shared_buffers_high"],
        )
        said = [messages.postgres_note(self.env, note) for note in notes]
        self.assertFalse([sentence for sentence in said if "%(" in sentence])
        self.assertEqual(
            said[0],
            "work_mem x max_connections = 31.2 GiB, more than the memory (8.0 GiB, container limit): many concurrent sorts or hashes can exhaust it (each query node may use work_mem).",  # noqa: E501
        )
        self.assertIn("shared_buffers is 50 % of the memory (8.0 GiB):", said[3])

    def test_the_pot_holds_every_sentence(self):
        """Each ``_()`` of ``messages.py`` (advisor findings, report advice) is in the pot."""
        with open(os.path.join(ADDON_DIR, "i18n", "memory_hygiene.pot"), "rb") as file:
            pot = {message.id for message in read_po(file) if message.id}
        said = _msgids(os.path.join(ADDON_DIR, "messages.py"), {"_": None})
        self.assertGreater(len(said), 80)
        self.assertEqual(
            said - pot,
            set(),
            "regenerate the pot: odoo-bin --i18n-export=i18n/memory_hygiene.pot --modules=memory_hygiene",
        )
        self.assertIn("workers without proxy_mode", pot, "an advisor finding")
        self.assertIn(
            "Workers reach their soft limit often: look for leaking crons and heavy requests, or size the limits (and workers) to the workload.",  # noqa: E501
            pot,
            "the report's advice",
        )
