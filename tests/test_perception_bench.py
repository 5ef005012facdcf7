"""The perception benchmark's mechanics, on the tiny test configs (the full-size run is too slow for CI)."""

from __future__ import annotations

import pytest

from fastreasonseg.hardware import cpu_has_bf16
from fastreasonseg.perception.bench import COMPONENTS, format_table, perception_benchmark, summarize

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py: tiny models, one thread


def test_benchmark_reports_both_presets_for_every_component():
    rows = perception_benchmark(tiny=True, frames=1, warmup=0, video_warmup=1, image_size=(48, 64), isolate=False,
                                labels=4, objects=2)
    assert [(row["preset"], row["component"]) for row in rows] == \
        [(preset, component) for component in COMPONENTS for preset in ("quality", "fast")]
    for row in rows:
        assert "error" not in row, row
        assert row["seconds_per_frame"] > 0 and row["cpu_seconds_per_frame"] >= 0
        assert row["peak_rss_mb"] > 0 and row["params_m"] > 0
        assert row["image"] == "64x48" and row["device"] == "cpu"
    video = {row["preset"]: row for row in rows if row["component"] == "video"}
    assert (video["quality"]["video_mode"], video["fast"]["video_mode"]) == ("propagate", "detect")
    assert video["fast"]["frames"] == 5  # one key-frame cycle: the steady-state cost per frame
    assert "@384" in video["fast"]["models"] and "@960" in video["quality"]["models"]
    # Each row says which precision ran: fast autocasts to bf16 only where the CPU has bf16 arithmetic.
    fast_ran = "bfloat16" if cpu_has_bf16() else "off"
    assert {(row["preset"], row["autocast"]) for row in rows} == {("quality", "off"), ("fast", fast_ran)}
    summary = summarize(rows)
    assert set(summary) == {"quality", "fast"} and summary["fast"]["video_fps"] > 0
    table = format_table(rows)
    assert all(component in table for component in COMPONENTS) and "fast s/frame" in table
    assert table.splitlines()[-1] == f"| autocast | off |  | {fast_ran} |  |"


def test_autocast_can_be_replaced_to_time_fast_in_float32():
    (row,) = perception_benchmark(("fast",), ("segmenter",), tiny=True, frames=1, warmup=0, image_size=(48, 64),
                                  isolate=False, objects=2, autocast="off")
    assert row["autocast"] == "off" and row["seconds_per_frame"] > 0


def test_isolated_run_measures_in_a_fresh_process():
    (row,) = perception_benchmark(("fast",), ("depth",), tiny=True, frames=1, warmup=0, image_size=(28, 28), threads=1)
    assert row["component"] == "depth" and row["peak_rss_mb"] > row["model_rss_mb"] >= 0 and row["threads"] == 1


def test_unknown_component_or_preset_is_rejected():
    with pytest.raises(ValueError, match="unknown presets/components"):
        perception_benchmark(components=("yolo",))
    with pytest.raises(ValueError, match="unknown presets/components"):
        perception_benchmark(presets=("turbo",))
