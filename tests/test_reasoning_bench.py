"""The reasoning benchmark's bookkeeping with a scripted backend (no timing assertions) and its CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastreasonseg.cli.main import main
from fastreasonseg.data.synth import SynthConfig, generate_item
from fastreasonseg.eval.reasoning_bench import ReasoningBenchConfig, Sequential, bench_reasoning
from fastreasonseg.reasoning.backends.base import Generation, GenerationRequest, ReasonerBackend


@pytest.fixture(scope="module")
def items_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("items") / "test.jsonl"
    config = SynthConfig(split="test", n=6, seed=1)
    path.write_text("".join(json.dumps(generate_item(config, i)) + "\n" for i in range(config.n)))
    return path


class Oracle(ReasonerBackend):
    """Answers every query with the ids of the last user message's first object row; counts cache clears."""

    name = "oracle"

    def __init__(self) -> None:
        self.clears = 0
        self.calls = 0

    def clear_cache(self) -> None:
        self.clears += 1

    def complete(self, request: GenerationRequest) -> Generation:
        self.calls += 1
        scene = request.messages[-1]["content"].split("\n")
        first_id = next(line.split()[0] for line in scene[3:] if line.split() and line.split()[0].isdigit())
        return Generation(f"<reason>take {first_id}</reason>\n<answer>[{first_id}]</answer>", "stop",
                          prompt_tokens=100, new_tokens=10, cached_tokens=60)


def test_report_fields_and_reuse_bookkeeping(items_file: Path) -> None:
    backend = Oracle()
    config = ReasoningBenchConfig(items=str(items_file), n=4, reuse_scenes=2, queries_per_scene=3)
    report = bench_reasoning(config, backend=backend)
    assert report["n"] == 4 and len(report["queries"]) == 4
    assert report["new_tokens"]["total"] == 40
    assert report["prompt_tokens"]["cached_fraction"] == 0.6
    assert report["format_ok_rate"] == 1.0
    assert 0.0 <= report["mean_j"] <= 1.0 and 0.0 <= report["accuracy"] <= 1.0
    assert report["latency_s"]["p90"] >= report["latency_s"]["median"] >= 0
    assert report["peak_rss_mb"] > 0
    reuse = report["prefix_reuse"]
    assert reuse["scenes"] == 2 and reuse["identical_outputs"] == "6/6"
    # warm-up + 4 queries + 2 scenes x 3 queries twice (with cache, re-encoding)
    assert backend.calls == 1 + 4 + 2 * 3 * 2
    # one clear before each cached scene run + one per re-encoded call
    assert backend.clears == 2 + 2 * 3
    assert report["config"]["rollout"]["few_shot"] is True


def test_sequential_view_clears_before_every_call_only_when_reencoding() -> None:
    inner = Oracle()
    request = GenerationRequest(messages=[{"role": "user", "content": "Scene:\nh\nh\nh\n5 cup\nRequest: q"}])
    reencoding, keeping = Sequential(inner, reencode=True), Sequential(inner)
    reencoding.complete(request)
    reencoding.complete(request)
    keeping.complete(request)
    assert inner.clears == 2 and reencoding.name == "oracle (re-encoding)" and not keeping.supports_batching


def test_batching_backends_also_report_the_batched_time(items_file: Path) -> None:
    class Batching(Oracle):
        supports_batching = True

    report = bench_reasoning(ReasoningBenchConfig(items=str(items_file), n=2, reuse_scenes=1, queries_per_scene=2),
                             backend=Batching())
    assert "seconds_batched_with_cache" in report["prefix_reuse"]


def test_cli_writes_the_report(items_file: Path, tmp_path: Path, monkeypatch) -> None:
    import fastreasonseg.reasoning.factory as factory

    monkeypatch.setattr(factory, "load_reasoner", lambda config: Oracle())
    assert main(["bench", "reasoning", "--items", str(items_file), "--n", "2", "--reuse-scenes", "1",
                 "--queries-per-scene", "2", "--out", str(tmp_path), "--quiet"]) == 0
    report = json.loads((tmp_path / "reasoning_bench.json").read_text())
    assert report["reasoner"] == "oracle" and report["n"] == 2 and report["prefix_reuse"]["scenes"] == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--n", "0"], "n must be >= 1"),
    (["--items", "/nonexistent.jsonl"], "does not exist"),
])
def test_cli_errors(items_file: Path, tmp_path: Path, capsys, monkeypatch, args, message) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    base = ["bench", "reasoning", "--items", str(items_file), "--out", str(tmp_path)]
    assert main(base + args) == 1
    assert message in capsys.readouterr().err


def test_time_split_sums_stages_over_queries_and_leaves_the_rest_to_other() -> None:
    from fastreasonseg.eval.reasoning_bench import time_split

    rows = [{"seconds": 1.0, "timing": {"prefill_s": 0.2, "decode_s": 0.5, "tools_s": 0.1}},
            {"seconds": 3.0, "timing": {"prefill_s": 0.6, "decode_s": 1.5}}]
    split = time_split(rows)
    assert split["prefill_s"] == {"per_query_s": 0.4, "share": 0.2}
    assert split["decode_s"] == {"per_query_s": 1.0, "share": 0.5}
    assert split["tools_s"] == {"per_query_s": 0.05, "share": 0.025}
    assert split["other_s"]["per_query_s"] == pytest.approx(0.55)
    assert sum(part["share"] for part in split.values()) == pytest.approx(1.0, abs=0.002)
    assert time_split([{"seconds": 1.0, "timing": {}}]) == {}  # a backend that measures nothing
