"""Reasoning benchmark: latency, throughput, memory and the prefix-reuse speed-up of a reasoner.

Run::

    frs data synth --out data/ --split test --n 50
    frs bench reasoning --items data/test.jsonl --n 50 --out bench_out/        # embedded default
    frs bench reasoning --items data/test.jsonl --backend hf --dtype bfloat16  # transformers path

Two phases on one loaded reasoner (the model load is reported, not counted):

1. **Per query**: each of the first ``n`` items is one query on its own twin, run in item
   order the way a user would (the backend keeps whatever it cached, so only the shared
   system prompt is reused across scenes). Reported: median and p90 wall time per query
   (prompt encoding, generation, tools, parsing), generated tokens per second (all new
   tokens / all rollout time), prompt/cached token counts, format-OK rate, the answers'
   mean J and accuracy (J > 0.5) against the item's ground truth through
   :func:`fastreasonseg.eval.scoring.target_from_item` (the project's one scorer), and the
   failure codes.
2. **Prefix reuse**: on ``reuse_scenes`` twins, ``queries_per_scene`` queries each (the
   item's own query plus the next items' queries) run one after another, once with the
   prefix cache and once re-encoding everything on every backend call; the speed-up is the
   ratio of the totals. Batching backends also report the batched time (with the cache).
   Greedy decoding makes both runs produce the same text, which is checked and reported.

Peak resident memory is the process's ``ru_maxrss`` (the largest RSS it ever had).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastreasonseg.reasoning.backends.base import Generation, GenerationRequest, ReasonerBackend
from fastreasonseg.reasoning.engine import RolloutConfig, RolloutEngine
from fastreasonseg.reasoning.factory import build_engine
from fastreasonseg.reasoning.loader import ReasonerConfig


@dataclass
class ReasoningBenchConfig:
    """What to benchmark. ``items``: a synthetic-data JSONL (``frs data synth``)."""

    items: str
    n: int = 50
    reuse_scenes: int = 3
    queries_per_scene: int = 5
    reasoner: ReasonerConfig = field(default_factory=ReasonerConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.reuse_scenes < 0 or self.queries_per_scene < 1:
            raise ValueError("reuse_scenes must be >= 0 and queries_per_scene >= 1")


class Sequential(ReasonerBackend):
    """A one-request-at-a-time view of a backend; with ``reencode`` every call starts from an empty cache.

    The prefix-reuse comparison runs both sides through this view so that only the cache
    differs (a batching backend would otherwise share the prefix inside each batch anyway).
    """

    def __init__(self, inner: ReasonerBackend, reencode: bool = False):
        self.inner = inner
        self.reencode = reencode
        self.name = inner.name + (" (re-encoding)" if reencode else "")
        self.adapter = inner.adapter
        self.supports_grammar = inner.supports_grammar

    def complete(self, request: GenerationRequest) -> Generation:
        if self.reencode:
            self.inner.clear_cache()
        return self.inner.complete(request)

    def count_tokens(self, text: str) -> int | None:
        return self.inner.count_tokens(text)

    def clear_cache(self) -> None:
        self.inner.clear_cache()


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else 0.0


def bench_reasoning(config: ReasoningBenchConfig, log: Callable[[str], None] | None = None,
                    backend: ReasonerBackend | None = None) -> dict[str, Any]:
    """Run both phases; returns the report (also the per-query rows under ``"queries"``)."""
    from fastreasonseg.data.items import load_items
    from fastreasonseg.eval.scoring import target_from_item

    say = log or (lambda _line: None)
    items = load_items(config.items)[: config.n]
    if not items:
        raise ValueError(f"{config.items} holds no items")
    rss_start = peak_rss_mb()
    start = time.perf_counter()
    engine = build_engine(backend or config.reasoner, config.rollout)
    backend, rollout_config = engine.backend, engine.config
    load_s = time.perf_counter() - start
    say(f"reasoner {backend.name} loaded in {load_s:.1f} s; {len(items)} item(s)")

    engine.run(items[0].twin, items[0].query)  # warm-up: first-call allocations, grammar compile, page-in
    rows = []
    for index, item in enumerate(items):
        result = engine.run(item.twin, item.query)
        score = target_from_item(item).score(result.answer_ids).iou
        rows.append({"id": item.id, "category": item.category, "level": item.level, "query": item.query,
                     "answer_ids": result.answer_ids, "truth_ids": item.answer_ids, "j": round(score, 4),
                     "format_ok": result.format_ok, "failures": sorted({f.code for f in result.failures}),
                     "seconds": round(result.seconds, 4), "prompt_tokens": result.prompt_tokens,
                     "cached_tokens": result.cached_tokens, "new_tokens": result.new_tokens,
                     "tool_rounds": len(result.rounds), "timing": result.timing})
        say(f"[{index + 1}/{len(items)}] {result.seconds:5.2f} s {result.new_tokens:3d} tok J={score:.2f} "
            f"{'ok ' if result.format_ok else 'BAD'} {item.query[:60]}")
    seconds = [r["seconds"] for r in rows]
    new_tokens = sum(r["new_tokens"] for r in rows)
    failure_counts = Counter(code for r in rows for code in r["failures"])

    split = time_split(rows)
    reuse: dict[str, Any] = {"scenes": 0}
    if config.reuse_scenes:
        reuse = _prefix_reuse(engine, backend, rollout_config, items, config, say)

    return {
        "reasoner": backend.name, "adapter": backend.adapter, "items": str(config.items), "n": len(rows),
        "load_s": round(load_s, 3),
        "latency_s": {"median": round(_percentile(seconds, 50), 3), "p90": round(_percentile(seconds, 90), 3),
                      "mean": round(float(np.mean(seconds)), 3), "max": round(max(seconds), 3)},
        "generated_tokens_per_s": round(new_tokens / max(sum(seconds), 1e-9), 2),
        "time_split": split,
        "new_tokens": {"median": _percentile([r["new_tokens"] for r in rows], 50), "total": new_tokens},
        "prompt_tokens": {"median": _percentile([r["prompt_tokens"] for r in rows], 50),
                          "cached_fraction": round(sum(r["cached_tokens"] for r in rows)
                                                   / max(1, sum(r["prompt_tokens"] for r in rows)), 3)},
        "format_ok_rate": round(sum(r["format_ok"] for r in rows) / len(rows), 3),
        "mean_j": round(float(np.mean([r["j"] for r in rows])), 4),
        "accuracy": round(sum(r["j"] > 0.5 for r in rows) / len(rows), 3),
        "failures": dict(failure_counts.most_common()),
        "peak_rss_mb": round(peak_rss_mb(), 1), "rss_before_load_mb": round(rss_start, 1),
        "prefix_reuse": reuse,
        "config": {"n": config.n, "reuse_scenes": config.reuse_scenes, "queries_per_scene": config.queries_per_scene,
                   "reasoner": asdict(config.reasoner), "rollout": asdict(rollout_config)},
        "queries": rows,
    }


def time_split(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Where the queries' wall time went: per stage, seconds per query and share of the total.

    Stages are what the backend measured (``prompt_s`` render + tokenize, ``prefill_s``,
    ``decode_s`` the forward passes of generated tokens, ``grammar_s`` sampling incl. grammar
    checks, ``detokenize_s`` incl. stop-string checks) and the engine's ``tools_s``; ``other_s``
    is the rest (engine, parsing, Python). Empty when the backend measures nothing.
    """
    total = sum(r["seconds"] for r in rows)
    stages: dict[str, float] = {}
    for row in rows:
        for key, value in (row.get("timing") or {}).items():
            stages[key] = stages.get(key, 0.0) + value
    if not stages or total <= 0:
        return {}
    stages["other_s"] = max(0.0, total - sum(stages.values()))
    return {key: {"per_query_s": round(value / len(rows), 4), "share": round(value / total, 3)}
            for key, value in stages.items()}


def _prefix_reuse(engine: RolloutEngine, backend: ReasonerBackend, rollout_config: RolloutConfig, items: list,
                  config: ReasoningBenchConfig, say: Callable[[str], None]) -> dict[str, Any]:
    """Total time of ``queries_per_scene`` queries per scene, one after another, with the prefix cache vs
    re-encoding every call; for batching backends also the batched time (with the cache)."""
    cached_engine = build_engine(Sequential(backend), rollout_config)
    baseline = build_engine(Sequential(backend, reencode=True), rollout_config)
    with_cache, without_cache, batched, same, scenes = [], [], [], 0, 0
    for scene_index in range(min(config.reuse_scenes, len(items))):
        twin = items[scene_index].twin
        queries = [items[(scene_index + k) % len(items)].query for k in range(config.queries_per_scene)]
        backend.clear_cache()
        start = time.perf_counter()
        cached = cached_engine.run_many(twin, queries)
        with_cache.append(time.perf_counter() - start)
        start = time.perf_counter()
        fresh = baseline.run_many(twin, queries)
        without_cache.append(time.perf_counter() - start)
        same += sum(a.text == b.text for a, b in zip(cached, fresh, strict=True))
        if backend.supports_batching:
            backend.clear_cache()
            start = time.perf_counter()
            engine.run_many(twin, queries)
            batched.append(time.perf_counter() - start)
        scenes += 1
        say(f"prefix reuse, scene {scene_index + 1}: {with_cache[-1]:.2f} s with cache vs "
            f"{without_cache[-1]:.2f} s re-encoding ({len(queries)} queries)"
            + (f"; batched {batched[-1]:.2f} s" if batched else ""))
    total_with, total_without = sum(with_cache), sum(without_cache)
    report = {"scenes": scenes, "queries_per_scene": config.queries_per_scene,
              "seconds_with_cache": round(total_with, 3), "seconds_reencoding": round(total_without, 3),
              "speedup": round(total_without / max(total_with, 1e-9), 2),
              "identical_outputs": f"{same}/{scenes * config.queries_per_scene}"}
    if batched:
        report["seconds_batched_with_cache"] = round(sum(batched), 3)
    return report


def write_report(report: dict[str, Any], out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "reasoning_bench.json"
    path.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return path
