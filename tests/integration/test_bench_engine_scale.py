"""bench.engine --memory, small: the native engine with its old records in both journal stores."""

from __future__ import annotations

import os

import pytest

from bench.engine import measure_scale
from tests.stores import require_postgres
from tests.support import ENGINE_CLASSES

if "cython" not in ENGINE_CLASSES and os.environ.get("CI") != "true":  # under CI it is required: tests fail without
    pytest.skip("the native engine is not built", allow_module_level=True)


def test_the_scale_report_measures_memory_throughput_lookups_and_recovery_on_both_stores() -> None:
    # 500 transfers hot of 60,000: the rest are read back from the journals.
    report = measure_scale(2_000, 60_000, ["sqlite", require_postgres()], recovery=True, transfers_hot=500)
    assert report["transfers"] == 60_000 and report["transfers_hot"] == 500
    assert report["rss_bytes_per_transfer"] > 0 and report["table_bytes_per_transfer"] > 0
    assert report["apply_transfers_per_s_at_scale"] > 0 and report["batch_ms"]["max"] > 0
    retries = report["apply_with_old_retries"]
    assert retries["old_retried"] == 320 and retries["records_read_back"] >= 320
    for store in ("sqlite", "postgresql"):
        assert report["old_lookups"][store]["lookups"] == 2_000
        assert report["recovery"][store]["transfers"] == 60_000 + retries["transfers"] - 320
        assert report["recovery"][store]["seconds_from_ids"] > 0
