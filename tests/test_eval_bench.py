"""Efficiency benchmark: the bandwidth bound, side-by-side rows with ratios, and the report format."""

from __future__ import annotations

import pytest

from fastreasonseg.eval.bench import BenchConfig, format_report, memory_bandwidth, reasoner_benchmark


def test_memory_bandwidth_is_positive_and_bound_is_the_larger_figure():
    bw = memory_bandwidth(megabytes=16, repeats=2)
    assert bw["read_gb_s"] > 0 and bw["copy_gb_s"] > 0
    assert bw["bound_gb_s"] == max(bw["read_gb_s"], bw["copy_gb_s"])


def test_reasoners_side_by_side_with_ratios_to_the_first():
    config = BenchConfig(reasoners=("student", "qwen3-0.6b"), tiny=True, isolate=False, prompt_tokens=16,
                         new_tokens=4)
    bandwidth = {"read_gb_s": 2.0, "copy_gb_s": 4.0, "bound_gb_s": 4.0, "array_mb": 16}
    rows = reasoner_benchmark(config, bandwidth)
    assert [r["reasoner"] for r in rows] == ["student", "qwen3-0.6b"]
    student, qwen = rows
    assert 130 < student["params_m"] < 140  # SmolLM2-135M
    assert student["params_m_ratio"] == 1.0 and student["decode_tok_s_ratio"] == 1.0
    # Tiny Qwen3 test config: 2 layers of width 64 over a 1000-token vocabulary, tied embeddings counted once:
    # embeddings 1000*64; per layer q 64*64, k and v 64*32, o 64*64, q/k norms 2*16, MLP 3*64*128, 2 norms 2*64.
    per_layer = 64 * 64 + 2 * 64 * 32 + 64 * 64 + 2 * 16 + 3 * 64 * 128 + 2 * 64
    assert qwen["params_m"] == pytest.approx((1000 * 64 + 2 * per_layer + 64) / 1e6)
    assert qwen["params_m"] == pytest.approx(qwen["weight_bytes"] / 2 / 1e6)  # bf16: 2 bytes per weight
    assert qwen["params_m_ratio"] == pytest.approx(qwen["params_m"] / student["params_m"])
    for row in rows:
        assert row["bound_tok_s"] == pytest.approx(4.0e9 / row["weight_bytes"])
        assert row["share_of_bound"] == pytest.approx(row["decode_tok_s"] / row["bound_tok_s"])
        assert row["decode_tok_s"] > 0 and row["prefill_tok_s"] > 0 and row["peak_rss_mb"] > 0
    text = format_report({"machine": {"cpus": 2, "load_avg": 0.5}, "bandwidth": bandwidth, "reasoners": rows})
    lines = text.splitlines()
    assert "bound uses 4.0" in lines[0]
    assert lines[2].startswith("| reasoner | params (M)") and "decode x" in lines[2]
    assert lines[4].startswith("| student | 135 |") and lines[4].endswith("| 1.00 | 1.00 | 1.00 | 1.00 |")
    assert lines[5].startswith("| qwen3-0.6b |")


def test_failed_reasoner_is_a_row_not_a_crash():
    text = format_report({"machine": {"cpus": 2, "load_avg": 0.5},
                          "bandwidth": {"read_gb_s": 1.0, "copy_gb_s": 1.0, "bound_gb_s": 1.0},
                          "reasoners": [{"reasoner": "qwen3-8b", "error": "MemoryError: "}]})
    assert "| qwen3-8b | error: MemoryError" in text


@pytest.mark.parametrize("bad", [{"reasoners": ("gpt-5",)}, {"reasoners": ()}, {"new_tokens": 0},
                                 {"prompt_tokens": 1}, {"threads": 0}])
def test_bench_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        BenchConfig(**bad)
