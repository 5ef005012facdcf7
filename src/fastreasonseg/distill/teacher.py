"""``frs teacher``: reasoning chains for training items, kept only when their answer is right.

Run::

    frs teacher --items data/synth/train.jsonl --out runs/teacher                 # programmatic (offline)
    frs teacher --items ... --kind openai --base-url http://host:8000/v1 --samples 4   # Qwen/Qwen3-8B served by vLLM
    frs teacher --items ... --kind hf --model Qwen/Qwen3-8B --samples 4            # local transformers model

Teachers:

- ``programmatic``: the synthetic items already carry the chain their query program
  produced; it is re-verified (parsed, and every ``<plan>`` re-run on the item's twin so the
  recorded ``<results>`` must match the tools) rather than trusted.
- ``hf`` / ``openai``: an LLM through the reasoning runtime
  (:class:`~fastreasonseg.reasoning.engine.RolloutEngine`: pause at ``</plan>``, run the DT
  tools, insert ``<results>``, resume), ``samples`` chains per item at ``temperature``.

Filter (paper: keep chains whose answer's mask IoU > 0.7): a chain is kept when it parses
without failures (``strict``; otherwise only format failures reject) and
:func:`fastreasonseg.eval.scoring.score_answer` gives IoU > ``iou_threshold``. Every decision
(kept or rejected, with its reason) is one line of ``out/chains.jsonl``, appended with
:class:`~fastreasonseg.distill.jsonl.JsonlAppender`, so a killed run loses nothing and a
rerun skips the (item, sample) pairs already decided. ``out/teacher_stats.json`` counts kept
and rejected chains by reason and category.

Departures from the paper: the paper's teacher is Qwen3-8B after GRPO; offline, the
programmatic teacher stands in (exact by construction, on synthetic data only).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastreasonseg.data.items import Item, as_item
from fastreasonseg.data.teacher import ChainReplay
from fastreasonseg.distill.config import TeacherConfig
from fastreasonseg.reasoning.protocol import Failure, parse_rollout

CHAINS_NAME = "chains.jsonl"
STATS_NAME = "teacher_stats.json"


@dataclass
class ChainOutput:
    """One teacher chain before filtering: its text plus what the runtime reported."""

    text: str
    runtime_failures: list[Failure] = field(default_factory=list)
    new_tokens: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Decision:
    kept: bool
    reason: str
    iou: float
    answer_ids: list[int] | None


def decide(chain: ChainOutput, view: Item, *, iou_threshold: float, strict: bool = True) -> Decision:
    """Keep or reject one chain; ``reason`` is ``kept``, ``runtime:<code>``, ``format:<code>``, ``content:<code>``,
    ``no_answer`` or ``low_iou``."""
    from fastreasonseg.eval.scoring import target_from_item

    parsed = parse_rollout(chain.text, view.twin)
    answer = parsed.answer_ids
    iou = target_from_item(view).score(answer).iou
    if chain.runtime_failures:
        return Decision(False, f"runtime:{chain.runtime_failures[0].code}", iou, answer)
    format_failures = [f for f in parsed.failures if f.kind == "format"]
    if format_failures:
        return Decision(False, f"format:{format_failures[0].code}", iou, answer)
    if strict and parsed.failures:
        return Decision(False, f"content:{parsed.failures[0].code}", iou, answer)
    if not answer:
        return Decision(False, "no_answer", iou, answer)
    if iou <= iou_threshold:
        return Decision(False, "low_iou", iou, answer)
    return Decision(True, "kept", iou, answer)


class ProgrammaticTeacher(ChainReplay):
    """Replays the chain a synthetic item carries (written by its query program), for re-verification."""

    def chains(self, view: Item, samples: int) -> list[ChainOutput]:
        if not isinstance(view.teacher, str) or not view.teacher.strip():
            return [ChainOutput(text="", runtime_failures=[Failure("missing_answer", "item carries no teacher chain")])]
        return [ChainOutput(text=view.teacher)]


class LLMTeacher:
    """An LLM teacher through the rollout engine; sample ``k`` uses seed ``seed + k`` so reruns reproduce it."""

    def __init__(self, backend: Any, config: TeacherConfig):
        self.backend = backend
        self.config = config
        self.name = f"{config.kind}:{config.model}"

    def _engine(self, sample: int) -> Any:
        from fastreasonseg.reasoning.engine import RolloutConfig
        from fastreasonseg.reasoning.factory import build_engine

        c = self.config
        rollout = RolloutConfig(max_tool_rounds=c.max_tool_rounds, max_new_tokens_per_turn=c.max_new_tokens,
                                max_new_tokens=c.max_new_tokens, temperature=c.temperature if c.samples > 1 else 0.0,
                                seed=c.seed + 7919 * sample, few_shot=c.few_shot, twin_max_tokens=c.twin_max_tokens)
        return build_engine(self.backend, rollout)

    def chain(self, view: Item, sample: int) -> ChainOutput:
        result = self._engine(sample).run(view.twin, view.query)
        runtime = [f for f in result.failures if f.kind == "runtime"]
        return ChainOutput(text=result.text, runtime_failures=runtime, new_tokens=result.new_tokens,
                           seconds=result.seconds)


def make_teacher(config: TeacherConfig) -> ProgrammaticTeacher | LLMTeacher:
    if config.kind == "programmatic":
        return ProgrammaticTeacher()
    if config.kind == "hf":
        from fastreasonseg.reasoning.backends.hf import HFBackend, HFBackendConfig

        backend = HFBackend.from_pretrained(HFBackendConfig(model=config.model, gguf_file=config.gguf_file,
                                                            adapter=config.adapter))
        return LLMTeacher(backend, config)
    from fastreasonseg.reasoning.backends.openai import OpenAIBackend, OpenAIBackendConfig

    return LLMTeacher(OpenAIBackend(OpenAIBackendConfig(model=config.model, base_url=config.base_url)), config)


def summarize(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Kept/rejected counts overall, by reason and by category, and the mean IoU of kept chains."""
    total = kept = 0
    reasons: Counter = Counter()
    by_category: dict[str, Counter] = {}
    kept_iou = 0.0
    items_kept: set[str] = set()
    for record in records:
        total += 1
        reasons[record.get("reason", "?")] += 1
        category = str(record.get("category") or "?")
        by_category.setdefault(category, Counter())["kept" if record.get("kept") else "rejected"] += 1
        if record.get("kept"):
            kept += 1
            kept_iou += float(record.get("iou") or 0.0)
            items_kept.add(str(record.get("item_id")))
    return {"chains": total, "kept": kept, "rejected": total - kept, "items_with_kept_chain": len(items_kept),
            "keep_rate": kept / total if total else 0.0, "mean_kept_iou": kept_iou / kept if kept else None,
            "reasons": dict(reasons.most_common()), "by_category": {k: dict(v) for k, v in sorted(by_category.items())}}


def _write_stats(path: Path, stats: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(stats, indent=2), encoding="utf-8")
    tmp.replace(path)


def run_teacher(config: TeacherConfig, *, items: Iterable[Any] | None = None, teacher: Any | None = None,
                progress: bool = True) -> dict[str, Any]:
    """Generate, filter and append chains; resumes from ``config.out/chains.jsonl``. Returns the stats."""
    from tqdm.auto import tqdm

    from fastreasonseg.data.items import ItemError, load_items
    from fastreasonseg.distill.jsonl import JsonlAppender, read_jsonl

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out)
    chains_path = out / CHAINS_NAME
    appender = JsonlAppender(chains_path)  # repairs a torn last line before we read what is done
    done = {(str(r.get("item_id")), int(r.get("sample", 0))) for r in read_jsonl(chains_path)}
    teacher = teacher or make_teacher(config)
    source = load_items(config.items, config.split) if items is None else items
    session: Counter = Counter()
    bar = tqdm(desc="teacher", unit="item", disable=not progress, total=config.limit)
    seen_items = 0
    try:
        for item in source:
            if config.limit is not None and seen_items >= config.limit:
                break
            seen_items += 1
            bar.update(1)
            try:
                view = as_item(item)
            except ItemError as exc:
                session["bad_item"] += 1
                bar.write(f"skipping item: {exc}")
                continue
            pending = [k for k in range(config.samples) if (view.id, k) not in done]
            if not pending:
                session["skipped_done"] += config.samples
                continue
            if isinstance(teacher, ProgrammaticTeacher):
                outputs = dict(zip(pending, teacher.chains(view, 1), strict=False))
            else:
                outputs = {k: teacher.chain(view, k) for k in pending}
            for sample, chain in outputs.items():
                decision = decide(chain, view, iou_threshold=config.iou_threshold, strict=config.strict)
                appender.write({"item_id": view.id, "sample": sample, "teacher": teacher.name, "kept": decision.kept,
                                "reason": decision.reason, "iou": round(decision.iou, 6),
                                "answer_ids": decision.answer_ids, "chain": chain.text,
                                "category": view.keys.get("category"), "level": view.keys.get("level"),
                                "new_tokens": chain.new_tokens, "seconds": round(chain.seconds, 3)})
                done.add((view.id, sample))
                session["kept" if decision.kept else "rejected"] += 1
            bar.set_postfix(kept=session["kept"], rejected=session["rejected"])
    finally:
        bar.close()
        appender.close()
        stats = summarize(read_jsonl(chains_path))
        stats["this_run"] = dict(session)
        _write_stats(out / STATS_NAME, stats)
    return stats
