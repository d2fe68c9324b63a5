{
    "name": "Memory Hygiene",
    "summary": "Keep Odoo workers healthy in memory: batched crons, snapshots, leak profiling, diagnostics",
    # One codebase serves 18.0 and 19.0: Odoo prefixes the running series itself.
    "version": "1.0.0",
    "category": "Extra Tools",
    "website": "https://github.com/memory-hygiene/memory_hygiene",
    "author": "memory_hygiene developers",
    "license": "LGPL-3",
    "depends": ["base_setup", "mail"],
    "external_dependencies": {"python": ["psutil", "pympler", "requests", "prometheus_client"]},
    "data": [
        "security/ir.model.access.csv",
        "data/ir_cron_data.xml",
        "views/menus.xml",
        "views/memory_batch_position_views.xml",
        "views/memory_snapshot_views.xml",
        "views/memory_cron_run_views.xml",
        "views/ir_cron_views.xml",
        "views/res_config_settings_views.xml",
    ],
    "installable": True,
    "application": False,
}
