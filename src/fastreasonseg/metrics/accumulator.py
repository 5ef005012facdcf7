"""Benchmark-wide aggregation of J, F, J&F, gIoU and cIoU, overall and per group.

One sample is one (object-expression, video) pair or one (query, image) pair. Averaging order,
as DAVIS and ReVOS report it:

1. per frame: J and F of the frame (``j_score`` / ``f_score``), the frame's LISA
   intersection / union (ignore pixels excluded) and its IoU (1.0 for an empty union);
2. per sample: J, F and gIoU are means over the sample's frames (an image is one frame);
   J&F of the sample is (J + F) / 2;
3. per group: J, F, J&F and gIoU are means over the group's samples (every sample weighs the
   same whatever its length); cIoU is the group's total intersection over total union
   (0.0 when that union is empty, as LISA).

Groups come from ``keys`` given with each sample (e.g. ``{"category": "spatial", "level": "L2"}``);
``compute()`` returns ``{"overall": {...}, "category": {"spatial": {...}, ...}, "level": {...}}``
with each leaf ``{"count", "frames", "J", "F", "J&F", "gIoU", "cIoU"}``.
DAVIS's semi-supervised protocol drops the first and last frames; reasoning benchmarks score
every frame given, so nothing is dropped here (pass the frames you want scored).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fastreasonseg.metrics.davis import DEFAULT_BOUND_TH, f_score, j_score
from fastreasonseg.metrics.lisa import intersection_union, sample_iou

MaskInput = np.ndarray | Sequence[np.ndarray]
METRIC_NAMES = ("J", "F", "J&F", "gIoU", "cIoU")


@dataclass(frozen=True)
class SampleScore:
    """Scores of one sample (means over its frames) and its pixel totals for cIoU."""

    keys: tuple[tuple[str, str], ...]
    frames: int
    j: float
    f: float | None
    giou: float
    intersection: int
    union: int


def _frames(value: MaskInput | None, name: str) -> list[np.ndarray | None] | None:
    """A single (H, W) mask, a (T, H, W) array or a list of (H, W) masks -> list of frames."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        if value.ndim == 2:
            return [value]
        if value.ndim == 3:
            return list(value)
        raise ValueError(f"{name} must be (H, W), (T, H, W) or a list of (H, W) masks, got shape {value.shape}")
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ValueError(f"{name} must be a numpy array or a list of per-frame arrays, got {type(value).__name__}")


class MetricAccumulator:
    """Collects per-sample scores with ``update`` and reports grouped means with ``compute``.

    ``compute_boundary=False`` skips F (and J&F), the costly part, for image-only benchmarks
    that report gIoU / cIoU.
    """

    def __init__(self, bound_th: float = DEFAULT_BOUND_TH, *, compute_boundary: bool = True) -> None:
        if not math.isfinite(bound_th) or bound_th < 0:
            raise ValueError(f"bound_th must be a finite number >= 0, got {bound_th!r}")
        self.bound_th = float(bound_th)
        self.compute_boundary = bool(compute_boundary)
        self._samples: list[SampleScore] = []

    def __len__(self) -> int:
        return len(self._samples)

    @property
    def samples(self) -> list[SampleScore]:
        return list(self._samples)

    def reset(self) -> None:
        self._samples.clear()

    def update(self, pred: MaskInput, gt: MaskInput, *, ignore: MaskInput | None = None,
               keys: dict[str, str] | None = None) -> SampleScore:
        """Score one sample: ``pred``/``gt`` are an (H, W) mask or the per-frame masks of a video."""
        pred_frames = _frames(pred, "pred")
        gt_frames = _frames(gt, "gt")
        ignore_frames = _frames(ignore, "ignore")
        if pred_frames is None or gt_frames is None:
            raise ValueError("update needs both pred and gt masks")
        if not gt_frames:
            raise ValueError("a sample needs at least one ground-truth frame")
        if len(pred_frames) != len(gt_frames):
            raise ValueError(f"pred has {len(pred_frames)} frames but gt has {len(gt_frames)}")
        if ignore_frames is None:
            ignore_frames = [None] * len(gt_frames)
        elif len(ignore_frames) != len(gt_frames):
            raise ValueError(f"ignore has {len(ignore_frames)} frames but gt has {len(gt_frames)}")
        group_keys = self._check_keys(keys)
        js, fs, ious = [], [], []
        total_inter = total_union = 0
        for t, (p, g, ign) in enumerate(zip(pred_frames, gt_frames, ignore_frames, strict=True)):
            inter, union = intersection_union(p, g, ign, index=t)
            total_inter += inter
            total_union += union
            ious.append(sample_iou(inter, union))
            # DAVIS has void pixels, not ignore labels; the same pixels are void for J and F here.
            js.append(j_score(p, g, void=ign))
            if self.compute_boundary:
                fs.append(f_score(p, g, self.bound_th, void=ign))
        score = SampleScore(keys=group_keys, frames=len(gt_frames), j=float(np.mean(js)),
                            f=float(np.mean(fs)) if fs else None, giou=float(np.mean(ious)),
                            intersection=total_inter, union=total_union)
        self._samples.append(score)
        return score

    @staticmethod
    def _check_keys(keys: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
        if keys is None:
            return ()
        if not isinstance(keys, dict):
            raise ValueError(f"keys must be a dict of group name -> value, got {type(keys).__name__}")
        for name, value in keys.items():
            if not isinstance(name, str) or not name or name == "overall":
                raise ValueError(f"group names must be non-empty strings other than 'overall', got {name!r}")
            if not isinstance(value, str):
                raise ValueError(f"keys[{name!r}] must be a string, got {type(value).__name__} {value!r}")
        return tuple(keys.items())

    def compute(self) -> dict[str, dict]:
        """``{"overall": leaf, group: {value: leaf}}``; a leaf's metrics are None when it has no samples."""
        result: dict[str, dict] = {"overall": _summarise(self._samples)}
        groups: dict[str, dict[str, list[SampleScore]]] = {}
        for sample in self._samples:
            for name, value in sample.keys:
                groups.setdefault(name, {}).setdefault(value, []).append(sample)
        for name in sorted(groups):
            result[name] = {value: _summarise(groups[name][value]) for value in sorted(groups[name])}
        return result


def _summarise(samples: list[SampleScore]) -> dict[str, float | int | None]:
    out: dict[str, float | int | None] = {"count": len(samples), "frames": sum(s.frames for s in samples)}
    if not samples:
        out.update(dict.fromkeys(METRIC_NAMES))
        return out
    j = float(np.mean([s.j for s in samples]))
    f = float(np.mean([s.f for s in samples])) if all(s.f is not None for s in samples) else None
    union = sum(s.union for s in samples)
    out["J"] = j
    out["F"] = f
    out["J&F"] = (j + f) / 2 if f is not None else None
    out["gIoU"] = float(np.mean([s.giou for s in samples]))
    out["cIoU"] = sum(s.intersection for s in samples) / union if union else 0.0
    return out
