"""The sentences users read, made from the codes and figures that ``core/`` returns.

``core/`` says what it found as stable codes and figures (machine-facing, the
same in every language); the sentences are built here through ``env._``, in
the language of the environment, with named placeholders, so that
``i18n/memory_hygiene.pot`` holds every one of them and a translator sees
the figures each sentence shows. Every sentence is one literal on one line, so
that what the UI shows is found by grep.

Log lines, Prometheus HELP texts and the health endpoint's JSON stay in
English: they are read by machines and by whoever reads logs.
"""

from .core.common.say import Say


def report_say(env):
    """``say(code, figures) -> str`` for :mod:`core.reporting.report`'s renderers, in ``env``'s language."""
    sentences = {
        "cron": lambda f: env._('Scheduled action "%(name)s" (id %(id)s): %(reason)s', **f),
        "growth": lambda f: env._(
            "Scheduled actions were charged %(total_mb)+.1f MiB of growth in 24 h (a healthy action: its charged runs' mean times its runs)",  # noqa: E501
            **f,
        ),
        "process": lambda f: env._(
            "%(kind)s process %(pid)s on %(host)s grew %(growth_mb)+.0f MiB in %(hours).1f h (RSS now %(rss_mb).0f MiB)",  # noqa: E501
            **f,
        ),
        "limit": lambda f: env._(
            "%(kind)s process %(pid)s on %(host)s is at %(soft_limit_pct).0f %% of its soft limit (warn at %(warn_share).0f %%; virtual size %(vms_mb).0f MiB, RSS %(rss_mb).0f MiB)",  # noqa: E501
            **f,
        ),
        "recycles": lambda f: env._("%(count)s worker recycle(s) on %(host)s", **f),
        "site": lambda f: f["line"],  # file:line and figures, no sentence
        "held_by": lambda f: env._("held by %(path)s", **f),
        "charged": lambda f: env._("charged %(growth_mb)+.1f MiB in 24 h (%(share).0f %% of it)", **f),
        "growth_row": lambda f: (
            env._(
                '"%(name)s" (id %(id)s): %(growth_mb)+.1f MiB, %(share).0f %% (%(runs)s runs, %(fds_kept)s files kept open)',  # noqa: E501
                **f,
            )
            if f["fds_kept"]
            else env._('"%(name)s" (id %(id)s): %(growth_mb)+.1f MiB, %(share).0f %% (%(runs)s runs)', **f)
        ),
        "orm_cache": lambda f: env._(
            "The record cache grows: process in batches with memory.batch.mixin (commit and env.invalidate_all() after each batch) instead of one big loop."  # noqa: E501
        ),
        "tracking": lambda f: env._(
            "Chatter and tracking keep memory: write in bulk with tracking_disable=True (memory.batch.mixin does it by default)."  # noqa: E501
        ),
        "connections": lambda f: env._(
            "External connections stay open: use `with requests.Session() as session:` and close each response."  # noqa: E501
        ),
        "module_state": lambda f: env._(
            "Memory kept at %(site)s: a module-level list or dict cache? Keep state in the database or in an ormcache (cleared by Odoo), never in a module global.",  # noqa: E501
            **f,
        ),
        "outside_python": lambda f: env._(
            "RSS grows outside Python's heap (C extension, fragmentation): keep limit_memory_soft so the worker is recycled, and lower the limits."  # noqa: E501
        ),
        "process_growth": lambda f: env._(
            "Find what makes it grow: switch on 'Profile every cron until' for a day, and keep limit_memory_soft low enough that the worker is recycled before it swaps."  # noqa: E501
        ),
        "growth_advice": lambda f: env._(
            "What each scheduled action's runs grew the worker by (after minus before each run): the first ones are where to look; a suspect one has its next run traced by itself."  # noqa: E501
        ),
        "near_limit": lambda f: env._(
            "It will be recycled after its current job: if this is its normal load, raise limit_memory_soft and limit_memory_hard (they compare the virtual size); otherwise find the growth."  # noqa: E501
        ),
        "recycles_advice": lambda f: env._(
            "Workers reach their soft limit often: look for leaking crons and heavy requests, or size the limits (and workers) to the workload."  # noqa: E501
        ),
        "summary": lambda f: env._(
            "Memory Hygiene report for %(database)s (%(generated_at)s): %(count)s finding(s).", **f
        ),
        "summary_empty": lambda f: env._(
            "Memory Hygiene report for %(database)s (%(generated_at)s): nothing to report.", **f
        ),
        "advice": lambda f: env._("Advice"),
    }

    return _sayer(sentences)


def _sayer(sentences):
    """``say(code, figures)`` over ``sentences`` (``{code: figures -> str}``); a figure that is a
    :class:`~core.common.say.Say` is said first."""

    def say(code, figures):
        return sentences[code](
            {key: say(*value) if isinstance(value, Say) else value for key, value in figures.items()}
        )

    say.codes = frozenset(sentences)
    return say


def advisor_titles(env):
    """``say(code, figures) -> str`` for the titles of :mod:`core.diagnostics.advisor`'s findings."""
    return _sayer(
        {
            **_advisor_phrases(env),
            "sound": lambda f: env._("Nothing to change"),
            "threaded": lambda f: env._("workers = 0: one threaded process serves everything"),
            "workers_vs_cpu": lambda f: env._("%(workers)s HTTP workers for %(cpus)s", **f),
            "proxy_mode": lambda f: env._("workers without proxy_mode"),
            "no_cron": lambda f: env._("max_cron_threads = 0: no cron worker on this server"),
            "no_soft": lambda f: env._(
                "limit_memory_soft%(suffix)s = 0: workers are never recycled for their size", **f
            ),
            "hard_not_above_soft": lambda f: env._(
                "limit_memory_hard%(suffix)s (%(hard)s) is not above limit_memory_soft%(suffix)s (%(soft)s)",
                **f,
            ),
            "hard_close_to_soft": lambda f: env._(
                "limit_memory_hard%(suffix)s (%(hard)s) is only %(room)s above limit_memory_soft%(suffix)s (%(soft)s)",  # noqa: E501
                **f,
            ),
            "hard_below_report_floor": lambda f: env._(
                "limit_memory_hard%(suffix)s (%(hard)s) is below what a PDF report needs (%(floor)s)", **f
            ),
            "no_hard": lambda f: env._(
                "limit_memory_hard = 0: nothing stops a runaway process before the OOM killer"
            ),
            "limits_vs_ram_steady": lambda f: env._(
                "%(count)s processes (%(processes)s) at their soft limit need %(steady)s, more than %(ram)s",
                **f,
            ),
            "limits_vs_ram_runaway": lambda f: env._(
                "one process at its hard limit (%(hard)s) while the others sit at their soft limit needs %(runaway)s, more than %(ram)s",  # noqa: E501
                **f,
            ),
            "limits_vs_ram_soft": lambda f: env._(
                "limit_memory_soft (%(soft)s) leaves little memory for PostgreSQL and the page cache", **f
            ),
            "gap": lambda f: env._("%(kind)s: virtual size %(vms)s, RSS %(rss)s, gap %(gap)s", **f),
            "above_soft": lambda f: env._(
                "a %(kind)s process is above its soft limit (%(size)s > %(soft)s)", **f
            ),
            "no_time_real_thread": lambda f: env._(
                "limit_time_real = 0: a stuck request holds its thread forever"
            ),
            "no_time_real_worker": lambda f: env._(
                "limit_time_real = 0: a stuck request holds its worker forever"
            ),
            "cpu_above_real": lambda f: env._(
                "limit_time_cpu (%(cpu)s s) is above limit_time_real (%(real)s s)", **f
            ),
            "no_time_real_cron": lambda f: env._(
                "limit_time_real_cron = 0: scheduled actions run without a time limit"
            ),
            "threaded_time_limits": lambda f: env._(
                "workers = 0: a thread past its time limit restarts the whole server"
            ),
            "threaded_cron_time": lambda f: env._(
                "workers = 0 and limit_time_real_cron = %(cron)s: scheduled actions are held to limit_time_real (%(real)s s)",  # noqa: E501
                **f,
            ),
            "no_cron_worker_age": lambda f: env._(
                "limit_time_worker_cron = 0: cron workers are never restarted by age"
            ),
            "cron_worker_age": lambda f: env._(
                "limit_time_worker_cron = %(age)s s: cron workers are renewed at that age", **f
            ),
            "connections": lambda f: env._(
                "Odoo may open %(demand)s connections (%(pools)s), more than PostgreSQL's max_connections (%(max_connections)s) minus %(reserved)s reserved slot(s) = %(available)s",  # noqa: E501
                **f,
            ),
        }
    )


def advisor_advice(env):
    """``say(code, figures) -> str`` for the advice of the advisor's findings, a sentence each.

    The findings are :mod:`core.diagnostics.advisor`'s.
    """
    return _sayer(
        {
            **_advisor_phrases(env),
            "sound": lambda f: env._(
                "Workers, limits and memory agree with each other on this machine (%(cpus)s, %(ram)s).", **f
            ),
            "threaded": lambda f: env._(
                "Fine for development, not for production: one process runs Python on one CPU (the GIL), a slow request holds up the others, there is no per-worker memory limit and no recycling, and a limit restarts the whole server. In production set workers = %(workers)s (2 x %(cpus)s + 1), max_cron_threads = 1 or 2, and proxy_mode = True behind a reverse proxy.",  # noqa: E501
                **f,
            ),
            "workers_vs_cpu": lambda f: env._(
                "The guideline is at most 2 x CPUs + 1 = %(workers)s workers: more only wait for a CPU, and each one holds its own copy of Odoo in memory. Set workers = %(workers)s, or give the server more CPUs.",  # noqa: E501
                **f,
            ),
            "proxy_mode": lambda f: env._(
                "With workers, Odoo runs behind a reverse proxy (nginx) that routes /websocket to the gevent port. Set proxy_mode = True so that Odoo trusts its X-Forwarded-For/-Host/-Proto headers: client addresses in the logs, https URLs and redirects depend on it."  # noqa: E501
            ),
            "no_cron": lambda f: env._(
                "Scheduled actions run only where another server has cron workers. If none has, set max_cron_threads = 1."  # noqa: E501
            ),
            "keep_hard": lambda f: env._(
                "Keep hard about 25 %% above soft: limit_memory_hard%(suffix)s = %(hard)s (%(hard_size)s).",
                **f,
            ),
            "no_soft": lambda f: env._(
                "A worker that grows keeps its memory until the hard limit or the OOM killer ends it mid-request. Set limit_memory_soft%(suffix)s (see the memory finding for a size).",  # noqa: E501
                **f,
            ),
            "hard_not_above_soft": lambda f: env._(
                "Past the soft limit a worker finishes its request and is replaced; the hard limit makes allocations fail (MemoryError) in the middle of a request. With hard <= soft a growing worker dies mid-request instead of being recycled cleanly."  # noqa: E501
            ),
            "hard_close_to_soft": lambda f: env._(
                "A worker is recycled only after the request that takes it past the soft limit; a request that needs more than %(room)s on top of that fails with MemoryError instead.",  # noqa: E501
                **f,
            ),
            "hard_below_report_floor": lambda f: env._(
                "The programs a worker starts inherit its address space limit (RLIMIT_AS): wkhtmltopdf reserves about %(floor)s of address space (for some 40 MiB of RAM), so below that every PDF report fails. Set limit_memory_hard%(suffix)s = %(floor_bytes)s (%(floor)s) or more; if the memory cannot afford it, run fewer workers or give the server more memory (see the memory finding).",  # noqa: E501
                **f,
            ),
            "set_limits": lambda f: env._(
                "Set limit_memory_soft = %(soft)s (%(soft_size)s) and limit_memory_hard = %(hard)s (%(hard_size)s): about %(share)s %% of %(ram)s shared by %(count)s process(es); the hard limit 25 %% above the soft one and never below %(floor)s (PDF reports).",  # noqa: E501
                **f,
            ),
            "limits_gap": lambda f: env._(
                "The soft limit includes the %(gap)s by which the virtual size Odoo compares exceeds RSS.",
                **f,
            ),
            "set_workers": lambda f: env._("Set workers = %(workers)s.", **f),
            "more_workers_more_memory": lambda f: env._(
                "More workers need more memory: each one takes its share, and the hard limit cannot go below %(floor)s.",  # noqa: E501
                **f,
            ),
            "more_memory": lambda f: env._(
                "Even one HTTP worker, %(cron)s cron worker(s) and the gevent process cannot each get the %(floor)s of address space a PDF report needs (and a working soft limit) within %(ram)s: give the server at least %(needed)s of memory.",  # noqa: E501
                **f,
            ),
            "limits_vs_ram_steady": lambda f: env._(
                "Odoo recycles a worker only past its soft limit: before that, the kernel's OOM killer (which may pick PostgreSQL) strikes."  # noqa: E501
            ),
            "limits_vs_ram_runaway": lambda f: env._(
                "The OOM killer would strike before Odoo's hard limit does."
            ),
            "limits_vs_ram_soft": lambda f: env._(
                "%(count)s processes (%(processes)s) at that limit would hold %(steady)s of %(ram)s.", **f
            ),
            "gap": lambda f: env._(
                "Odoo's limits apply to the virtual size (address space) on Linux, the OOM killer and the RAM to RSS."  # noqa: E501
            ),
            "gap_at_soft": lambda f: env._(
                "Odoo's limits apply to the virtual size (address space) on Linux, the OOM killer and the RAM to RSS; it is recycled at %(soft)s of virtual size, about %(rss_at_soft)s of RSS.",  # noqa: E501
                **f,
            ),
            "above_soft": lambda f: env._(
                "It is recycled after its current request; if it happens at every request the soft limit is below what a fresh process already takes in virtual size. Raise limit_memory_soft%(suffix)s to at least %(least)s.",  # noqa: E501
                **f,
            ),
            "no_time_real": lambda f: env._(
                "Set limit_time_real (Odoo's default is 120 s; reports and imports may need more)."
            ),
            "cpu_above_real": lambda f: env._(
                "CPU time never exceeds real time: the real-time limit always fires first, so the CPU limit does nothing. Keep limit_time_cpu below limit_time_real, e.g. limit_time_cpu = %(cpu)s.",  # noqa: E501
                **f,
            ),
            "no_time_real_cron": lambda f: env._(
                "A cron that hangs holds its cron worker until it is killed by hand. -1 uses limit_time_real."
            ),
            "threaded_time_limits": lambda f: env._(
                "Request threads are held to limit_time_real (%(real)s s): the server restarts when one passes it, every request in flight with it.",  # noqa: E501
                **f,
            ),
            "threaded_time_limits_cron": lambda f: env._(
                "Request threads are held to limit_time_real (%(real)s s), cron threads to limit_time_real_cron (%(cron)s s): the server restarts when one passes it, every request in flight with it.",  # noqa: E501
                **f,
            ),
            "threaded_cron_time": lambda f: env._(
                "In the threaded server a cron thread without a limit of its own (limit_time_real_cron <= 0) gets limit_time_real, unlike a cron worker: a scheduled action longer than that restarts the whole server. Set limit_time_real_cron = %(cron)s (or what your longest scheduled action needs).",  # noqa: E501
                **f,
            ),
            "no_cron_worker_age": lambda f: env._(
                "A cron worker gives its memory back only when it passes limit_memory_soft. Odoo 19 can restart it after a given age (between two jobs, never in the middle of one): limit_time_worker_cron = %(age)s renews it every hour.",  # noqa: E501
                **f,
            ),
            "cron_worker_age": lambda f: env._(
                "They finish their current job first; their memory goes back to the system each time."
            ),
            "connections": lambda f: env._(
                '"remaining connection slots are reserved" (PostgreSQL) or "Connection Pool Is Full" (Odoo) errors come next.'  # noqa: E501
            ),
            "connections_pooled": lambda f: env._(
                "Set db_maxconn = %(maxconn)s (a worker serves one request at a time and rarely holds more than 2 connections), or raise max_connections to %(max_connections)s (every connection costs PostgreSQL memory: a pooler such as PgBouncer helps past a few hundred). This counts this server only: other Odoo servers and tools on the same PostgreSQL share the same slots.",  # noqa: E501
                **f,
            ),
            "connections_threaded": lambda f: env._(
                "Set db_maxconn = %(maxconn)s, or raise max_connections to %(max_connections)s (every connection costs PostgreSQL memory: a pooler such as PgBouncer helps past a few hundred). This counts this server only: other Odoo servers and tools on the same PostgreSQL share the same slots.",  # noqa: E501
                **f,
            ),
        }
    )


def advisor_finding(env, finding):
    """``(title, advice)`` of a :class:`core.diagnostics.advisor.Finding`, in ``env``'s language."""
    title, advice = advisor_titles(env), advisor_advice(env)
    return title(*finding.title), " ".join(advice(*say) for say in finding.advice)


def _advisor_phrases(env):
    """Phrases said inside the advisor's sentences (figures that are a :class:`~core.common.say.Say`)."""
    return {
        "cpus": lambda f: env._("1 CPU") if f["count"] == "1" else env._("%(count)s CPUs", **f),
        "cpus_source": lambda f: (
            env._("1 CPU (%(origin)s)", **f)
            if f["count"] == "1"
            else env._("%(count)s CPUs (%(origin)s)", **f)
        ),
        "ram": lambda f: env._("%(size)s of RAM", **f),
        "ram_source": lambda f: env._("%(size)s (%(origin)s)", **f),
        "prefork_processes": lambda f: env._(
            "%(workers)s HTTP + %(cron)s cron workers and the gevent process", **f
        ),
        "threaded_process": lambda f: env._("threaded"),
        "pools_prefork": lambda f: env._(
            "(%(workers)s HTTP + %(cron)s cron workers) x db_maxconn %(maxconn)s + gevent %(gevent)s", **f
        ),
        "pools_threaded": lambda f: env._("db_maxconn %(maxconn)s of the threaded process", **f),
    }


def signal_refusal(env, reason):
    """Why a signal to another process was refused.

    The reason of :func:`core.diagnostics.signal_policy.decide`.
    """
    return _sayer(
        {
            "unknown_action": lambda f: env._("Unknown action '%(action)s': use one of %(actions)s.", **f),
            "not_a_pid": lambda f: env._("%(pid)s is not a process id.", **f),
            "init": lambda f: env._(
                "pid %(pid)s is the init process of this host or container: memory_hygiene never signals it.",
                **f,
            ),
            "no_process": lambda f: env._("There is no process %(pid)s on this host (any more).", **f),
            "foreign": lambda f: env._(
                "pid %(pid)s (%(name)s) is not a process of this Odoo server (its root is pid %(root)s). memory_hygiene only signals this server's own processes.",  # noqa: E501
                **f,
            ),
            "foreign_postgres": lambda f: env._(
                "pid %(pid)s (%(name)s) is not a process of this Odoo server (its root is pid %(root)s). It is a PostgreSQL process. memory_hygiene only signals this server's own processes.",  # noqa: E501
                **f,
            ),
            "replaced": lambda f: env._(
                "pid %(pid)s is no longer the process shown on the page: that one ended and pid %(pid)s now belongs to a process started later. Nothing was sent; refresh the page.",  # noqa: E501
                **f,
            ),
            "not_odoo": lambda f: env._(
                "pid %(pid)s (%(name)s) belongs to this server's process tree but is not an Odoo process (a program started by a worker): refused.",  # noqa: E501
                **f,
            ),
            "not_server_kind": lambda f: env._(
                "pid %(pid)s is an Odoo process of kind %(kind)s, not a server process.", **f
            ),
            "master": lambda f: env._(
                "pid %(pid)s is the master: recycling it would stop the whole server. Restart the service instead, or recycle its workers one by one.",  # noqa: E501
                **f,
            ),
            "threaded": lambda f: env._(
                "pid %(pid)s is the only process of this threaded server (workers = 0): recycling it would stop the server. Run with workers >= 1 to have workers that can be recycled.",  # noqa: E501
                **f,
            ),
        }
    )(*reason)


def verdict_reason(env, reason):
    """Why a scheduled action has its leak verdict.

    The reason of :func:`core.profiler.verdict.leak_verdict`.
    """
    return _sayer(
        {
            "too_few_runs": lambda f: env._("%(runs)s of %(window)s accounted runs", **f),
            "charged": lambda f: env._(
                "charged %(net)+.2f MiB over %(window)s runs (min %(min)+.2f MiB/run)", **f
            ),
            "charged_traced": lambda f: env._(
                "charged %(net)+.2f MiB over %(window)s runs (min %(min)+.2f MiB/run), the traced run kept %(traced)+.2f MiB",  # noqa: E501
                **f,
            ),
            "keeps_python": lambda f: env._(
                "every run grows and the traced run keeps Python memory: %(figures)s", **f
            ),
            "outside_python": lambda f: env._(
                "every run grows outside Python's heap (C extension?): %(figures)s", **f
            ),
            "grows_untraced": lambda f: env._("every run grows; its next run is traced: %(figures)s", **f),
            "gives_back": lambda f: env._("what the runs take they give back: %(figures)s", **f),
            "not_steady": lambda f: env._("the runs keep memory, not steadily: %(figures)s", **f),
        }
    )(*reason)


def param_error(env, label, say):
    """What to fix in the setting named ``label``: the ``say`` of a :class:`core.common.params.ParamError`."""
    return _sayer(
        {
            "too_short": lambda f: env._(
                "%(label)s must be empty or at least %(minimum)s characters long, got %(length)s characters.",
                **f,
            ),
            "not_a_whole_number": lambda f: env._("%(label)s must be a whole number, got %(value)s.", **f),
            "not_a_number": lambda f: env._("%(label)s must be a number, got %(value)s.", **f),
            "below_minimum": lambda f: env._("%(label)s must be at least %(minimum)s, got %(value)s.", **f),
            "above_maximum": lambda f: env._("%(label)s must be at most %(maximum)s, got %(value)s.", **f),
            "shorter_than_raw": lambda f: env._(
                "%(label)s must cover the full-resolution snapshots (%(raw_hours)s hours), got %(value)s days.",  # noqa: E501
                **f,
            ),
            "shorter_than_hours": lambda f: env._(
                "%(label)s must be at least the hourly history (%(hour_days)s days), got %(value)s.", **f
            ),
            "shorter_than_span": lambda f: env._(
                "%(label)s must cover the leak-suspect span and two sampling intervals (%(minutes)s minutes), got %(value)s hours.",  # noqa: E501
                **f,
            ),
        }
    )(say.code, {**say.figures, "label": label})


def postgres_note(env, note):
    """One note on PostgreSQL's settings.

    A :class:`~core.common.say.Say` of :func:`core.diagnostics.pgpressure.notes`.
    """
    return _sayer(
        {
            "memory": lambda f: env._("the memory (%(size)s)", **f),
            "memory_source": lambda f: env._("the memory (%(size)s, %(origin)s)", **f),
            "work_mem_worst": lambda f: env._(
                "work_mem x max_connections = %(worst)s, more than %(memory)s: many concurrent sorts or hashes can exhaust it (each query node may use work_mem).",  # noqa: E501
                **f,
            ),
            "work_mem_active": lambda f: env._(
                "%(active)s active queries x 4 x work_mem already approach %(memory)s: lower work_mem for the Odoo role, or the concurrency.",  # noqa: E501
                **f,
            ),
            "shared_buffers_high": lambda f: env._(
                "shared_buffers is %(share)s %% of %(memory)s: on a host shared with Odoo that leaves little room for the workers and the page cache.",  # noqa: E501
                **f,
            ),
            "shared_buffers_low": lambda f: env._(
                "shared_buffers is %(share)s %% of %(memory)s; about 25 %% is the usual starting point on a dedicated host.",  # noqa: E501
                **f,
            ),
        }
    )(*note)


def tracer_said(env, said):
    """What the Diagnostics tracer did or why it stopped, a sentence.

    The tracer is :class:`core.diagnostics.heap.Tracer`.
    """
    return _sayer(
        {
            "already_tracing": lambda f: env._(
                "tracemalloc already traces this process (%(frames)s frame(s)).", **f
            ),
            "foreign_tracing": lambda f: env._(
                "tracemalloc already traces this process (%(frames)s frame(s)), started by something else.",
                **f,
            ),
            "shared_tracing": lambda f: env._(
                "tracemalloc already traces this process (%(frames)s frame(s), a profiled cron run): snapshots use that trace.",  # noqa: E501
                **f,
            ),
            "cannot_start": lambda f: env._("tracemalloc could not be started."),
            "started": lambda f: env._("tracemalloc started with %(frames)s frame(s) per allocation.", **f),
            "started_until": lambda f: env._(
                "tracemalloc started with %(frames)s frame(s) per allocation. It stops by itself after %(minutes)s min.",  # noqa: E501
                **f,
            ),
            "started_upto": lambda f: env._(
                "tracemalloc started with %(frames)s frame(s) per allocation. It stops by itself when it traces %(size)s.",  # noqa: E501
                **f,
            ),
            "started_until_upto": lambda f: env._(
                "tracemalloc started with %(frames)s frame(s) per allocation. It stops by itself after %(minutes)s min or when it traces %(size)s.",  # noqa: E501
                **f,
            ),
            "left_on": lambda f: env._(
                "tracemalloc was started by something else in this process (the cron-leak profiler?): left on."  # noqa: E501
            ),
            "not_tracing": lambda f: env._("tracemalloc is not tracing this process."),
            "released": lambda f: env._(
                "Diagnostics tracer released; tracemalloc stays on for its other user (a profiled run)."
            ),
            "stopped": lambda f: env._(
                "tracemalloc stopped; its memory and the previous snapshot are released."
            ),
            "time_up": lambda f: env._("its time was up"),
            "traced_above": lambda f: env._("it traced %(traced)s, above %(limit)s", **f),
            "snapshot_first": lambda f: env._(
                "Traced now %(current)s, peak %(peak)s.\nFirst snapshot: top %(top)s lines by size", **f
            ),
            "snapshot_compared": lambda f: env._(
                "Traced now %(current)s, peak %(peak)s.\nCompared with the previous snapshot: top %(top)s differences",  # noqa: E501
                **f,
            ),
        }
    )(*said)
