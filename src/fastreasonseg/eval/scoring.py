"""The one answer scorer: object ids -> masks -> IoU with the ground truth.

The RL accuracy reward, the teacher-chain filter (``frs teacher``) and evaluation all call
:func:`score_answer`, so a number reported in a results table is computed by exactly the
code that trained the student (nanochat's ``tasks/gsm8k.py`` pattern). The IoU itself comes
from :mod:`fastreasonseg.metrics` (``intersection_union`` / ``sample_iou``, LISA semantics):

- an answer's predicted mask in a frame is the union of the answered objects' masks in the
  twin the model saw (an object without a mask is its box, as everywhere in the project);
- a sample's IoU is the mean over its frames of the frame IoU (1.0 for a frame whose
  prediction and ground truth are both empty), i.e. the sample's gIoU term; for an image
  that is the plain mask IoU the paper thresholds (R_accuracy: IoU > 0.5, chains: IoU > 0.7);
- an unparseable or missing answer predicts nothing (IoU 0 unless the target is empty).

:func:`evaluate_reasoner` runs a reasoner over items and reports gIoU / cIoU overall and
by category, level and category x level, plus parse-failure rate, generated tokens and
latency, through :class:`fastreasonseg.metrics.MetricAccumulator`.

Departures from the paper: the paper scores images by mask IoU and videos by J; for one
frame these are the same number. For a video this scorer's "IoU" is the per-frame mean
(the sample's gIoU/J), which the paper does not define for its reward.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from fastreasonseg.metrics.lisa import intersection_union, sample_iou

if TYPE_CHECKING:
    from fastreasonseg.reasoning.engine import RolloutResult
    from fastreasonseg.twin.core import DigitalTwin


@dataclass(frozen=True)
class AnswerScore:
    """How well one answer's masks match the ground truth.

    ``iou``: mean over frames of the frame IoU (the sample's gIoU term); ``intersection`` /
    ``union``: pixel totals over the frames (for cIoU); ``frames``: frames scored.
    """

    iou: float
    intersection: int
    union: int
    frames: int

    def passes(self, threshold: float) -> bool:
        """True when the IoU is strictly above ``threshold`` (the paper's "IoU > t")."""
        return self.iou > threshold


def answer_masks(twin: DigitalTwin, object_ids: Iterable[int] | None,
                 frame_indices: Sequence[int] | None = None) -> list[np.ndarray]:
    """Per-frame union mask of ``object_ids`` in ``twin`` (ids absent from a frame add nothing there).

    ``frame_indices`` default to every frame of the twin in order; ``None`` ids give empty masks.
    """
    ids = list(dict.fromkeys(object_ids or []))
    indices = [f.index for f in twin.frames] if frame_indices is None else list(frame_indices)
    return [twin.union_mask(ids, index) for index in indices]


def score_masks(pred_frames: Sequence[np.ndarray], gt_frames: Sequence[np.ndarray],
                ignore_frames: Sequence[np.ndarray | None] | None = None) -> AnswerScore:
    """Score per-frame predicted masks against per-frame ground truth (same length and shapes)."""
    if len(pred_frames) != len(gt_frames):
        raise ValueError(f"{len(pred_frames)} predicted frames but {len(gt_frames)} ground-truth frames")
    if not gt_frames:
        raise ValueError("cannot score an answer against zero ground-truth frames")
    ignores = [None] * len(gt_frames) if ignore_frames is None else list(ignore_frames)
    total_inter = total_union = 0
    ious = []
    for index, (pred, gt, ignore) in enumerate(zip(pred_frames, gt_frames, ignores, strict=True)):
        inter, union = intersection_union(pred, gt, ignore, index=index)
        total_inter += inter
        total_union += union
        ious.append(sample_iou(inter, union))
    return AnswerScore(iou=float(np.mean(ious)), intersection=total_inter, union=total_union, frames=len(ious))


def score_answer(answer_ids: Iterable[int] | None, twin: DigitalTwin, gt_frames: Sequence[np.ndarray],
                 frame_indices: Sequence[int] | None = None) -> AnswerScore:
    """Score answered object ids: their masks in ``twin`` against ``gt_frames`` (aligned with ``frame_indices``)."""
    return score_masks(answer_masks(twin, answer_ids, frame_indices), gt_frames)


# --------------------------------------------------------------------------- targets


@dataclass
class ScoringTarget:
    """What an answer is scored against: the twin the model saw and the ground-truth masks per frame.

    ``gt_frames[i]`` is the (H, W) bool ground truth in frame ``frame_indices[i]`` of ``twin``.
    ``keys`` are the groups the sample is reported under (e.g. category, level).
    """

    twin: DigitalTwin
    gt_frames: list[np.ndarray]
    frame_indices: list[int]
    keys: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.gt_frames) != len(self.frame_indices):
            raise ValueError(f"{len(self.gt_frames)} ground-truth masks for {len(self.frame_indices)} frame indices")
        if not self.gt_frames:
            raise ValueError("a scoring target needs at least one ground-truth frame")
        shape = (self.twin.source.height, self.twin.source.width)
        for index, mask in zip(self.frame_indices, self.gt_frames, strict=True):
            if mask.shape != shape:
                raise ValueError(f"ground truth of frame {index} has shape {mask.shape}, the twin is {shape}")

    def score(self, answer_ids: Iterable[int] | None) -> AnswerScore:
        return score_answer(answer_ids, self.twin, self.gt_frames, self.frame_indices)


def target_from_item(item: Any) -> ScoringTarget:
    """The scoring target of an item (:class:`fastreasonseg.data.items.SynthItem`, its JSON dict or a dataset row).

    Ground truth: the item's per-frame ``gt_masks`` (union of the answer's clean masks;
    frames not listed are empty); without them, the union of ``answer_ids`` in the
    noise-free twin, or in the twin the model sees.
    """
    from fastreasonseg.data.items import as_item
    from fastreasonseg.twin.masks import decode_mask

    view = as_item(item)
    indices = [f.index for f in view.twin.frames]
    shape = (view.twin.source.height, view.twin.source.width)
    if view.gt_masks is not None:
        gt = [decode_mask(view.gt_masks[i]) if i in view.gt_masks else np.zeros(shape, dtype=bool) for i in indices]
    else:
        gt_twin = view.gt_twin or view.twin
        gt_indices = {f.index for f in gt_twin.frames}
        gt = [gt_twin.union_mask(view.answer_ids, i) if i in gt_indices else np.zeros(shape, dtype=bool)
              for i in indices]
    return ScoringTarget(twin=view.twin, gt_frames=gt, frame_indices=indices, keys=view.keys)


# --------------------------------------------------------------------------- evaluation


class Reasoner(Protocol):
    """Anything that answers a query on a twin: :class:`fastreasonseg.reasoning.engine.RolloutEngine` does."""

    def run(self, twin: DigitalTwin, query: str) -> RolloutResult: ...


@dataclass
class SampleRecord:
    """One evaluated item, for per-sample tables and debugging."""

    id: str
    query: str
    answer_ids: list[int] | None
    iou: float
    format_ok: bool
    parse_failed: bool
    new_tokens: int
    seconds: float
    failures: list[str]
    keys: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _rollout_of(reasoner: Any, item: Any, view: Any) -> Any:
    # A reasoner that needs the whole item (e.g. the programmatic teacher replaying its
    # chain) exposes run_item; engines answer from the twin and the query alone.
    if hasattr(reasoner, "run_item"):
        return reasoner.run_item(item)
    return reasoner.run(view.twin, view.query)


def evaluate_reasoner(items: Iterable[Any], reasoner: Reasoner | Any, *, limit: int | None = None,
                      progress: bool = False, records: list[SampleRecord] | None = None) -> dict[str, Any]:
    """Run ``reasoner`` on every item and report the metrics of the results table.

    ``reasoner`` has ``run(twin, query) -> RolloutResult`` (a ``RolloutEngine``) or
    ``run_item(item) -> RolloutResult``. Returns ``{"metrics": MetricAccumulator.compute()
    (overall, category, level, category_level), "count", "parse_failure_rate",
    "format_ok_rate", "mean_new_tokens", "mean_seconds", "median_seconds"}``; pass
    ``records=[]`` to also collect one :class:`SampleRecord` per item.
    """
    from tqdm.auto import tqdm

    from fastreasonseg.data.items import as_item
    from fastreasonseg.metrics import MetricAccumulator

    bar = tqdm(desc="evaluate", unit="item", total=limit, disable=not progress)
    accumulator = MetricAccumulator(compute_boundary=False)
    tokens: list[int] = []
    seconds: list[float] = []
    parse_failures = format_ok = count = 0
    for item in items:
        if limit is not None and count >= limit:
            break
        view = as_item(item)
        target = target_from_item(view)
        started = time.perf_counter()
        result = _rollout_of(reasoner, item, view)
        elapsed = float(getattr(result, "seconds", 0.0) or (time.perf_counter() - started))
        parsed = result.parsed
        answer = parsed.answer_ids
        parse_failed = answer is None
        score = target.score(answer)
        pred = answer_masks(target.twin, answer, target.frame_indices)
        keys = dict(target.keys)
        if "category" in keys and "level" in keys:
            keys["category_level"] = f"{keys['category']}/{keys['level']}"
        accumulator.update(pred, target.gt_frames, keys=keys)
        count += 1
        parse_failures += parse_failed
        format_ok += bool(parsed.format_ok)
        tokens.append(int(getattr(result, "new_tokens", 0)))
        seconds.append(elapsed)
        if records is not None:
            records.append(SampleRecord(id=view.id, query=view.query, answer_ids=answer, iou=score.iou,
                                        format_ok=bool(parsed.format_ok), parse_failed=parse_failed,
                                        new_tokens=tokens[-1], seconds=elapsed,
                                        failures=[f.code for f in getattr(result, "failures", parsed.failures)],
                                        keys=target.keys))
        bar.update(1)
    bar.close()
    if count == 0:
        raise ValueError("evaluate_reasoner got no items")
    return {"count": count, "metrics": accumulator.compute(), "parse_failure_rate": parse_failures / count,
            "format_ok_rate": format_ok / count, "mean_new_tokens": float(np.mean(tokens)),
            "mean_seconds": float(np.mean(seconds)), "median_seconds": float(statistics.median(seconds))}
