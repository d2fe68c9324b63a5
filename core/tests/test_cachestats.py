from core.diagnostics import cachestats


def test_ormcache_report_with_tx_and_size_columns():
    rows = [
        {
            "cache": "default",
            "method": "a",
            "entries": 2,
            "hit": 5,
            "miss": 2,
            "err": 0,
            "gen_time": 0.5,
            "ratio": 71.4,
            "tx_ratio": 50.0,
            "tx_calls": 4,
            "size_sum": 3000,
            "size_max": 2000,
        },
        {
            "cache": "templates",
            "method": "b",
            "entries": 1,
            "hit": 0,
            "miss": 1,
            "err": 0,
            "gen_time": 0.1,
            "ratio": 0.0,
            "tx_ratio": 0.0,
            "tx_calls": 1,
            "size_sum": 1000,
            "size_max": 1000,
        },
    ]
    text = cachestats.format_ormcache("db", rows, [("default", 2, 8192, 3000)], with_size=True)
    lines = text.splitlines()
    assert "TX Hit Ratio" in text and "Memory SUM" in text
    assert lines[-2].endswith("  a") and "75.0%" in lines[-2], "biggest first, share of the memory"
    assert " * default: 2/8192 (2.9 KiB)" in text


def test_record_cache_ranks_models_and_fields():
    counts = [("m", f"f{i}", i) for i in range(1, 8)] + [("n", "x", 100), ("o", "y", 0)]
    text = cachestats.format_record_cache(counts, top_fields=2)
    assert text.splitlines()[1] == "n: 100 values (x 100)"
    assert "m: 28 values (f7 7, f6 6, 5 more)" in text
    assert "o:" not in text
