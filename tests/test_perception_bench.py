"""The perception benchmark's mechanics, on the tiny test configs (the full-size run is too slow for CI)."""

from __future__ import annotations

import pytest

from fastreasonseg.perception.bench import COMPONENTS, format_table, perception_benchmark

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py: tiny models, one thread


def test_benchmark_reports_time_and_memory_for_every_component():
    rows = perception_benchmark(tiny=True, frames=1, warmup=1, image_size=(48, 64), isolate=False)
    assert [row["component"] for row in rows] == list(COMPONENTS)
    for row in rows:
        assert "error" not in row
        assert row["seconds_per_frame"] > 0 and row["cpu_seconds_per_frame"] >= 0
        assert row["peak_rss_mb"] > 0 and row["params_m"] > 0
        assert row["image"] == "64x48" and row["device"] == "cpu"
    table = format_table(rows)
    assert all(component in table for component in COMPONENTS)


def test_isolated_run_measures_in_a_fresh_process():
    (row,) = perception_benchmark(("depth",), tiny=True, frames=1, warmup=0, image_size=(28, 28), threads=1)
    assert row["component"] == "depth" and row["peak_rss_mb"] > row["model_rss_mb"] >= 0 and row["threads"] == 1


def test_unknown_component_is_rejected():
    with pytest.raises(ValueError, match="unknown components"):
        perception_benchmark(("yolo",))
