"""``frs eval``: run twins + reasoner over a benchmark, one JSONL line per sample, then a summary.

Run::

    frs eval --benchmark synthetic --items data/synth/test.jsonl --out runs/eval-synth
    frs eval --benchmark reasonseg --root data/ReasonSeg --split val --perception annotations --out runs/rs
    frs eval --benchmark revos --root data/ReVOS --perception models --reasoner path/to/student --limit 200

Outputs in ``--out``:

- ``config.json``: the resolved :class:`EvalConfig` (a later run in the same folder must match
  it in every field that changes results, or it is refused instead of mixing two runs);
- ``samples.jsonl``: one line per sample (query, answer ids, reasoning text, failures, IoU /
  J / F, pixel totals, timing). Written with one ``write`` per line and flushed, so a killed
  run tears at most the last line; rerunning the command drops a torn line, skips the sample
  ids already there and continues;
- ``summary.json`` / ``summary.md``: gIoU and cIoU (image benchmarks) or J, F, J&F (video
  ones) overall and grouped by category, level, short/long and, on synthetic items, held-out
  subset; parse-failure counts; mean perception / reasoning seconds;
- ``plots/by_<group>.png`` (bars per group value) and ``plots/iou_hist.png``.

Twins: ``--perception annotations`` builds an oracle twin from the benchmark's own instance
masks (ids = annotation ids, labels ``"object"``; it isolates reasoning errors),
``--perception models`` runs :mod:`fastreasonseg.perception` on the images / frames.
Synthetic items carry their twin (the noisy one the model is meant to see).

Metrics are :mod:`fastreasonseg.metrics` (LISA gIoU/cIoU, DAVIS J/F) through
:class:`~fastreasonseg.metrics.MetricAccumulator`, one sample at a time; the summary is
rebuilt from the JSONL records with the accumulator's definitions (group means of per-sample
scores; cIoU = total intersection / total union) so a resumed run's summary includes the
samples scored by earlier processes (tests check both agree). Departure from the paper: the
paper does not say how unparseable answers count; here they predict an empty mask (IoU 0
unless the target is empty) and are counted separately.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fastreasonseg.errors import FrsError
from fastreasonseg.reasoning.backends.gguf_merge import DEFAULT_LORA_MODE, LORA_MODES
from fastreasonseg.reasoning.engine import DEFAULT_TWIN_TOKENS

if TYPE_CHECKING:
    from fastreasonseg.twin.core import DigitalTwin

PERCEPTION_MODES = ("annotations", "models")
SYNTHETIC = "synthetic"
# Fields that may change between a run and its resumption without changing any result.
PROGRAMMATIC = "programmatic"
CHANCE = "chance"
RESUMABLE_FIELDS = frozenset({"out", "limit", "threads"})
SAMPLES_FILE = "samples.jsonl"


@dataclass
class EvalConfig:
    """One evaluation run. ``options`` are fields of the benchmark loader's config (see ``load_benchmark``)."""

    benchmark: str
    root: str | None = None
    items: str | None = None
    split: str | None = None
    reasoner: str = "default"
    adapter: str | None = None
    backend: str = "auto"
    threads: int | None = None
    lora_mode: str = DEFAULT_LORA_MODE  # llama.cpp: see ReasonerConfig.lora_mode
    perception: str = "annotations"
    out: str = "eval_out"
    limit: int | None = None
    twin_max_tokens: int | None = DEFAULT_TWIN_TOKENS
    max_new_tokens: int = 640
    max_tool_rounds: int = 3  # 0 = the "no tools / static twin" ablation: reason, then answer
    disabled_tools: list[str] = field(default_factory=list)  # e.g. ["knowledge"]: the "without the tool" ablation
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.benchmark = self.benchmark.strip().lower().replace("-", "_")
        if self.benchmark == SYNTHETIC:
            if not self.items:
                raise ValueError("--benchmark synthetic needs --items FILE.jsonl (from `frs data synth`)")
        elif not self.root:
            raise ValueError(f"--benchmark {self.benchmark} needs --root DIR (the benchmark's folder)")
        if self.perception not in PERCEPTION_MODES:
            raise ValueError(f"perception must be one of {PERCEPTION_MODES}, got {self.perception!r}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 sample, got {self.limit}")
        if self.lora_mode not in LORA_MODES:  # checked before any work, as ReasonerConfig does
            raise ValueError(f"lora_mode must be one of {LORA_MODES}, got {self.lora_mode!r}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.reasoner == PROGRAMMATIC and self.benchmark != SYNTHETIC:
            raise ValueError("--reasoner programmatic replays synthetic items' teacher chains: "
                             "use it with --benchmark synthetic")
        if self.max_tool_rounds < 0:
            raise ValueError(f"max_tool_rounds must be >= 0, got {self.max_tool_rounds}")
        from fastreasonseg.twin.tools import TOOLS

        self.disabled_tools = sorted(set(self.disabled_tools))
        unknown = [t for t in self.disabled_tools if t not in TOOLS]
        if unknown:
            raise ValueError(f"disabled tools {unknown} are not tools; tools: {', '.join(TOOLS)}")
        if self.disabled_tools and self.reasoner in (PROGRAMMATIC, CHANCE):
            raise ValueError(f"--disable-tool switches tools off for a model; the {self.reasoner} reasoner calls none")

    def differs_from(self, other: dict[str, Any]) -> list[str]:
        """Fields that differ from a saved config (a field the saved one predates counts as its default)."""
        mine, defaults = asdict(self), {f.name: f for f in fields(self)}

        def default(key: str) -> Any:
            f = defaults[key]
            return f.default_factory() if f.default_factory is not MISSING else f.default

        return [k for k in mine if k not in RESUMABLE_FIELDS and mine[k] != other.get(k, default(k))]


@dataclass
class EvalSample:
    """What one evaluation step needs: the twin (built lazily), the query and per-frame ground truth."""

    id: str
    query: str
    keys: dict[str, str]
    is_video: bool
    make_twin: Callable[[], DigitalTwin]
    gt_frames: Callable[[], list[np.ndarray]]
    ignore_frames: Callable[[], list[np.ndarray | None]] = lambda: []
    frame_indices: list[int] | None = None  # twin frame index of each ground-truth frame; None: 0, 1, ...
    item: dict[str, Any] | None = None  # the raw synthetic item (what the programmatic teacher replays)


# --------------------------------------------------------------------------- samples


def _synthetic_samples(path: str) -> Iterator[EvalSample]:
    from fastreasonseg.data.items import ItemError, iter_item_dicts
    from fastreasonseg.eval.scoring import target_from_item

    try:
        for number, data in iter_item_dicts(path):
            try:
                target = target_from_item(data)
            except (ItemError, ValueError, KeyError) as exc:
                raise FrsError(f"{path}:{number}: {exc}") from None
            keys = dict(target.keys)
            if isinstance(data.get("is_sentence"), bool):
                keys["length"] = "long" if data["is_sentence"] else "short"
            gt = target.gt_frames
            yield EvalSample(id=str(data.get("id", f"line{number}")), query=str(data["query"]), keys=keys,
                             is_video=target.twin.is_video, make_twin=lambda t=target.twin: t,
                             gt_frames=lambda g=gt: g, frame_indices=list(target.frame_indices), item=data)
    except ItemError as exc:
        raise FrsError(str(exc)) from None


def annotation_twin(sample: Any) -> DigitalTwin:
    """Oracle twin of a benchmark sample from its instance masks (ids = annotation ids, labels ``"object"``)."""
    from fastreasonseg.twin.core import DigitalTwin, Frame, Source, make_object
    from fastreasonseg.twin.masks import mask_box

    frames = []
    height = width = None
    for index in range(sample.num_frames):
        instances = sample.instance_masks(index)
        if height is None:
            shape = next(iter(instances.values())).shape if instances else sample.gt_mask(index).shape
            height, width = int(shape[0]), int(shape[1])
        objects = []
        for object_id, mask in sorted(instances.items()):
            box = mask_box(mask)
            if box is not None:
                objects.append(make_object(int(object_id), "object", 1.0, box, mask=mask))
        frames.append(Frame(index=index, time=float(index), objects=tuple(objects)))
    kind = "video" if sample.is_video else "image"
    source = Source(kind=kind, width=width, height=height, num_frames=sample.num_frames,
                    path=str(sample.image_path), fps=1.0 if sample.is_video else None)
    return DigitalTwin(source=source, frames=tuple(frames))


class _ModelTwins:
    """Perception twins, keeping the builders (and their loaded models) across samples."""

    def __init__(self) -> None:
        self.image_builder: Any = None
        self.video_builder: Any = None

    def __call__(self, sample: Any) -> DigitalTwin:
        from fastreasonseg.perception import PerceptionConfig

        if not sample.is_video:
            if self.image_builder is None:
                from fastreasonseg.perception.image import ImageTwinBuilder

                self.image_builder = ImageTwinBuilder(PerceptionConfig())
                self.image_builder.check_available()
            return self.image_builder.build(sample.image_path, queries=[sample.query])
        folders = {Path(p).parent for p in sample.frame_paths}
        if len(folders) != 1:
            raise FrsError(f"sample {sample.sample_id}: video frames span {len(folders)} folders; "
                           "--perception models needs one folder of frames per video")
        if self.video_builder is None:
            from fastreasonseg.perception.video import VideoTwinBuilder

            self.video_builder = VideoTwinBuilder(PerceptionConfig())
            self.video_builder.check_available()
        return self.video_builder.build(folders.pop(), queries=[sample.query])


def _benchmark_samples(config: EvalConfig) -> Iterator[EvalSample]:
    from fastreasonseg.data.benchmarks import load_benchmark

    benchmark = load_benchmark(config.benchmark, config.root, config.split, **config.options)
    twins: Callable[[Any], DigitalTwin] = annotation_twin if config.perception == "annotations" else _ModelTwins()
    for sample in benchmark:
        keys = {name: str(value) for name, value in (("category", sample.category), ("level", sample.level),
                                                    ("length", sample.length)) if value is not None}
        yield EvalSample(id=sample.sample_id, query=sample.query, keys=keys, is_video=sample.is_video,
                         make_twin=lambda s=sample: twins(s), gt_frames=lambda s=sample: list(s.gt_masks()),
                         ignore_frames=lambda s=sample: [s.ignore_mask(i) for i in range(s.num_frames)])


def count_samples(config: EvalConfig) -> int:
    """How many samples ``config`` names (before ``limit``); indexes the files without decoding masks."""
    if config.benchmark == SYNTHETIC:
        try:
            with open(config.items, encoding="utf-8") as handle:
                return sum(1 for line in handle if line.strip())
        except OSError as exc:
            raise FrsError(f"cannot read {config.items}: {exc}") from None
    from fastreasonseg.data.benchmarks import load_benchmark

    return len(load_benchmark(config.benchmark, config.root, config.split, **config.options))


def iter_samples(config: EvalConfig) -> Iterator[EvalSample]:
    """The samples of ``config``'s benchmark (synthetic items or a benchmark loader)."""
    if config.benchmark == SYNTHETIC:
        return _synthetic_samples(config.items)
    return _benchmark_samples(config)


# --------------------------------------------------------------------------- scoring one sample


def predicted_frames(twin: DigitalTwin, answer_ids: list[int] | None, frame_indices: list[int],
                     shape: tuple[int, int]) -> list[np.ndarray]:
    """Per-frame prediction for the twin frames ``frame_indices``: the answer's union mask, resized to ``shape``.

    A frame the twin does not cover (perception ran on a stride) predicts nothing; a twin of
    another resolution is resized with nearest neighbour, so no pixel is silently dropped.
    """
    indices = {f.index for f in twin.frames}
    out = []
    for index in frame_indices:
        mask = twin.union_mask(answer_ids or [], index) if index in indices else np.zeros(shape, dtype=bool)
        if mask.shape != shape:
            import cv2

            mask = cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0
        out.append(mask)
    return out


def score_sample(pred: list[np.ndarray], gt: list[np.ndarray], ignore: list[np.ndarray | None],
                 is_video: bool) -> dict[str, Any]:
    """J, F (videos), gIoU and the pixel totals of one sample, by :class:`MetricAccumulator` itself."""
    from fastreasonseg.metrics import MetricAccumulator

    score = MetricAccumulator(compute_boundary=is_video).update(pred, gt, ignore=ignore or None)
    return {"iou": score.giou, "J": score.j, "F": score.f, "intersection": score.intersection,
            "union": score.union, "frames": score.frames}


# --------------------------------------------------------------------------- JSONL records


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of a (possibly interrupted) run; a torn last line is cut off the file."""
    if not path.is_file():
        return []
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        cut = raw.rfind(b"\n") + 1  # drop the torn tail so the next append starts on a fresh line
        with open(path, "r+b") as handle:
            handle.truncate(cut)
        raw = raw[:cut]
    records = []
    for number, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise FrsError(f"{path}:{number}: not valid JSON ({exc.msg}); delete the line or the file") from None
    return records


def append_record(path: Path, record: dict[str, Any]) -> None:
    """One write per line, flushed and synced: a kill tears at most this line."""
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


# --------------------------------------------------------------------------- summary


def _leaf(records: list[dict[str, Any]]) -> dict[str, Any]:
    j = [r["J"] for r in records]
    f = [r["F"] for r in records]
    union = sum(r["union"] for r in records)
    leaf: dict[str, Any] = {"count": len(records), "frames": sum(r["frames"] for r in records),
                            "J": float(np.mean(j)), "F": float(np.mean(f)) if all(v is not None for v in f) else None,
                            "gIoU": float(np.mean([r["iou"] for r in records])),
                            "cIoU": sum(r["intersection"] for r in records) / union if union else 0.0,
                            "parse_failures": sum(bool(r["parse_failed"]) for r in records)}
    leaf["J&F"] = (leaf["J"] + leaf["F"]) / 2 if leaf["F"] is not None else None
    return leaf


def summarize(records: list[dict[str, Any]], *, benchmark: str = "") -> dict[str, Any]:
    """Grouped metrics of records: ``{"overall": leaf, "groups": {name: {value: leaf}}, ...}``."""
    if not records:
        raise FrsError("no evaluated samples to summarise")
    groups: dict[str, dict[str, list]] = {}
    for record in records:
        for name, value in record["keys"].items():
            groups.setdefault(name, {}).setdefault(value, []).append(record)
    video = any(r["is_video"] for r in records)
    return {
        "benchmark": benchmark, "count": len(records), "video": video,
        "headline": ["J", "F", "J&F"] if video else ["gIoU", "cIoU"],
        "overall": _leaf(records),
        "groups": {name: {value: _leaf(rs) for value, rs in sorted(values.items())}
                   for name, values in sorted(groups.items())},
        "parse_failures": sum(bool(r["parse_failed"]) for r in records),
        "format_ok_rate": float(np.mean([bool(r["format_ok"]) for r in records])),
        "seconds": {"perception_mean": float(np.mean([r["seconds"]["perception"] for r in records])),
                    "reasoning_mean": float(np.mean([r["seconds"]["reasoning"] for r in records]))},
        "mean_new_tokens": float(np.mean([r["new_tokens"] for r in records])),
    }


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def summary_markdown(summary: dict[str, Any]) -> str:
    """The summary as Markdown tables (metrics in percent, like the papers' tables)."""
    metrics = summary["headline"] + (["gIoU", "cIoU"] if summary["video"] else [])
    header = "| group | value | n | " + " | ".join(metrics) + " | parse failures |"
    rule = "|---|---|---|" + "---|" * len(metrics) + "---|"

    def row(group: str, value: str, leaf: dict[str, Any]) -> str:
        cells = " | ".join(_fmt(leaf[m]) for m in metrics)
        return f"| {group} | {value} | {leaf['count']} | {cells} | {leaf['parse_failures']} |"

    lines = [f"# Evaluation: {summary['benchmark']}", "",
             f"{summary['count']} samples; parse failures {summary['parse_failures']}; "
             f"format ok {100 * summary['format_ok_rate']:.1f}%; mean seconds per sample: perception "
             f"{summary['seconds']['perception_mean']:.2f}, reasoning {summary['seconds']['reasoning_mean']:.2f}; "
             f"mean generated tokens {summary['mean_new_tokens']:.0f}. Metrics in %.", "",
             header, rule, row("overall", "all", summary["overall"])]
    for name, values in summary["groups"].items():
        lines += [row(name, value, leaf) for value, leaf in values.items()]
    return "\n".join(lines) + "\n"


def write_plots(summary: dict[str, Any], records: list[dict[str, Any]], folder: Path) -> list[Path]:
    """Bars of the headline metric per group value, and the histogram of per-sample IoU."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    metric = "J&F" if summary["video"] else "gIoU"
    written = []
    for name, values in summary["groups"].items():
        labels = list(values)
        heights = [100 * (values[v][metric] or 0.0) for v in labels]
        fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(labels) + 2), 3.2))
        ax.bar(labels, heights, color="#4c78a8")
        for x, (height, value) in enumerate(zip(heights, labels, strict=True)):
            ax.text(x, height + 1, f"{height:.1f}\nn={values[value]['count']}", ha="center", fontsize=8)
        ax.set_ylim(0, 110)
        ax.set_ylabel(f"{metric} (%)")
        ax.set_title(f"{summary['benchmark']}: {metric} by {name}")
        fig.tight_layout()
        path = folder / f"by_{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.hist([r["iou"] for r in records], bins=np.linspace(0, 1, 11), color="#f58518", edgecolor="white")
    ax.set_xlabel("per-sample IoU (gIoU term)")
    ax.set_ylabel("samples")
    ax.set_title(f"{summary['benchmark']}: IoU histogram (n={len(records)})")
    fig.tight_layout()
    path = folder / "iou_hist.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
    return written


# --------------------------------------------------------------------------- the run


def _check_out(config: EvalConfig, out: Path) -> None:
    saved = out / "config.json"
    if saved.is_file():
        try:
            previous = json.loads(saved.read_text())
        except json.JSONDecodeError:
            raise FrsError(f"{saved} is not valid JSON; remove it or use another --out") from None
        changed = config.differs_from(previous)
        if changed:
            raise FrsError(f"{out} holds a run with different {', '.join(changed)}; "
                           "use another --out (or delete that folder) instead of mixing two runs")
    out.mkdir(parents=True, exist_ok=True)
    tmp = saved.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(config), indent=2) + "\n")
    tmp.replace(saved)


def run_eval(config: EvalConfig, reasoner: Any = None, *,
             progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Evaluate, resuming from ``config.out/samples.jsonl``; write the summary and plots; return the summary.

    ``reasoner`` (anything with ``run(twin, query) -> RolloutResult``, e.g. a
    :class:`RolloutEngine`) overrides loading ``config.reasoner``; it is loaded only when a
    sample still needs answering. ``progress(done, total)`` is called after every sample.
    """
    out = Path(config.out)
    _check_out(config, out)
    samples_path = out / SAMPLES_FILE
    records = read_records(samples_path)
    done = {r["id"] for r in records}
    total = count_samples(config)
    if config.limit is not None:
        total = min(total, config.limit)
    if progress:
        progress(min(len(done), total), total)
    with _knowledge_scope(config):
        reasoner = _answer_samples(config, reasoner, samples_path, records, done, total, progress)
    if config.limit is not None:
        records = records[:config.limit]
    summary = summarize(records, benchmark=config.benchmark)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(summary_markdown(summary))
    write_plots(summary, records, out / "plots")
    return summary


def _knowledge_scope(config: EvalConfig) -> Any:
    """Synthetic items: the knowledge tool's index without the held-out categories (honest held-out scores)."""
    import contextlib

    if config.benchmark != SYNTHETIC:
        return contextlib.nullcontext()
    from fastreasonseg.data.synth import holdout_categories
    from fastreasonseg.twin.tools.knowledge import excluded_categories

    return excluded_categories(holdout_categories())


def _answer_samples(config: EvalConfig, reasoner: Any, samples_path: Path, records: list[dict[str, Any]],
                    done: set[str], total: int, progress: Callable[[int, int], None] | None) -> Any:
    seen = 0
    for sample in iter_samples(config):
        if config.limit is not None and seen >= config.limit:
            break
        seen += 1
        if sample.id in done:
            continue
        if reasoner is None:
            reasoner = load_engine(config)
        started = time.perf_counter()
        twin = sample.make_twin()
        perceived = time.perf_counter()
        if hasattr(reasoner, "run_item"):  # the programmatic teacher replays the item's own chain
            result = reasoner.run_item(sample.item)
        else:
            result = reasoner.run(twin, sample.query)
        reasoned = time.perf_counter()
        answer = result.parsed.answer_ids
        gt = sample.gt_frames()
        indices = sample.frame_indices if sample.frame_indices is not None else list(range(len(gt)))
        pred = predicted_frames(twin, answer, indices, gt[0].shape)
        record = {"id": sample.id, "query": sample.query, "keys": sample.keys, "is_video": sample.is_video,
                  "answer_ids": answer, "parse_failed": answer is None, "format_ok": bool(result.parsed.format_ok),
                  "failures": [f.code for f in result.failures],
                  **score_sample(pred, gt, sample.ignore_frames(), sample.is_video),
                  "new_tokens": int(result.new_tokens), "prompt_tokens": int(result.prompt_tokens),
                  "seconds": {"perception": round(perceived - started, 4), "reasoning": round(reasoned - perceived, 4)},
                  "text": result.text}
        append_record(samples_path, record)
        records.append(record)
        done.add(sample.id)
        if progress:
            progress(min(len(records), total), total)
    return reasoner


class ChanceReasoner:
    """The floor row of a results table: answers one id of the twin, drawn uniformly.

    The draw is seeded by the query and the twin's ids (SHA-256), so a rerun or a resumed run
    gives the same answers. Its gIoU is what a reasoner that ignores the query scores.
    """

    name = CHANCE

    def run(self, twin: DigitalTwin, query: str) -> Any:
        import hashlib
        import random

        from fastreasonseg.reasoning.engine import RolloutResult
        from fastreasonseg.reasoning.protocol import build_rollout, parse_rollout

        started = time.perf_counter()
        ids = sorted(twin.track_ids)
        seed = hashlib.sha256(json.dumps([query, ids]).encode()).digest()
        answer = [random.Random(seed).choice(ids)] if ids else []
        text = build_rollout("Chance baseline: one id of the twin, drawn uniformly.", [], answer)
        parsed = parse_rollout(text, twin)
        return RolloutResult(query=query, text=text, answer_ids=answer, parsed=parsed, failures=list(parsed.failures),
                             stop_reason="chance", seconds=time.perf_counter() - started)


def load_engine(config: EvalConfig) -> Any:
    """The rollout engine for ``config.reasoner`` (``programmatic``: the synthetic items' own teacher chains;
    ``chance``: one uniformly drawn id, the floor of a results table)."""
    if config.reasoner == CHANCE:
        return ChanceReasoner()
    if config.reasoner == PROGRAMMATIC:
        from fastreasonseg.data.teacher import ChainReplay

        return ChainReplay()
    from fastreasonseg.reasoning.factory import build_engine
    from fastreasonseg.reasoning.loader import ReasonerConfig

    reasoner = ReasonerConfig(spec=config.reasoner, adapter=config.adapter, backend=config.backend,
                              threads=config.threads, lora_mode=config.lora_mode)
    return build_engine(reasoner, twin_max_tokens=config.twin_max_tokens, max_new_tokens=config.max_new_tokens,
                        max_tool_rounds=config.max_tool_rounds, disabled_tools=tuple(config.disabled_tools))
