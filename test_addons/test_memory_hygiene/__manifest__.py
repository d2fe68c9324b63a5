{
    "name": "Memory Hygiene Tests",
    "summary": "A user's addon that inherits memory.batch.mixin as documented; test models and tests",
    "version": "1.0.0",
    "category": "Hidden/Tests",
    "author": "memory_hygiene developers",
    "website": "https://github.com/memory-hygiene/memory_hygiene",
    "license": "LGPL-3",
    "depends": ["memory_hygiene", "mail"],
    "data": ["security/ir.model.access.csv", "data/ir_cron_data.xml"],
    "installable": True,
}
