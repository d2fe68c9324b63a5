"""The Odoo-free layer of memory_hygiene: what each feature computes, without the ORM.

Nothing in this package imports ``odoo`` (``core/tests/test_odoo_free.py``
checks it): it is tested with plain pytest and no database (``core/tests``,
and the doctests), and the ORM models delegate to it. Odoo-free is not
side-effect-free: it reads ``/proc`` and cgroups, sends signals, calls libc
and POSTs the leak report's webhook.

Where each feature lives (models under ``models/``, modules under ``core/``):

======================  ==========================================  ======================================
Feature                 Models, controllers                         core modules
======================  ==========================================  ======================================
Batching                memory_batch_mixin, memory_batch_position,  batch.batching (keyset batches, faults,
                        memory_batch_failure                        budgets), process.limits (the budgets'
                                                                    limits)
Snapshots               memory_snapshot, memory_host, ir_http       snapshot.sampler (what a snapshot
                        (self-sampling after a request)             records), snapshot.trends (who grows)
Profiler                ir_cron (the hook around each run),         profiler.accounting (every run),
                        memory_cron_run, memory_cron_run_line       profiler.leakprof (a traced run's
                                                                    session), profiler.holders,
                                                                    profiler.verdict
Diagnostics             memory_diagnostics, memory_diagnostics_*    diagnostics.advisor, .cachestats,
                        (process, finding, line, pg_figure,         .heap, .pgpressure, .scope,
                        pg_query), ir_actions_server                .signal_policy, .stack_dumps
Report                  memory_leak_report                          reporting.report
Machine and health      controllers/main.py (/health, /metrics)     host.machine, host.health,
                                                                    host.metrics
======================  ==========================================  ======================================

Shared by the features: ``process`` (one Odoo process: ``process.tree``
which processes the server has and of what kind, ``process.limits`` what
Odoo measures against its limits and the budgets they leave,
``process.reading`` a process's figures read with psutil) and ``common``
(``common.params`` the settings' keys and checks, ``common.units``,
``common.throttle``, ``common.tracing`` the one owner of tracemalloc). The
settings model is ``res_config_settings``; the Odoo side of the runtime is
``odoo_runtime.py`` and what differs between Odoo 18.0 and 19.0 is ``compat.py``.
"""
