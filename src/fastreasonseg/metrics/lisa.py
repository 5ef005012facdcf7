"""gIoU and cIoU for image reasoning segmentation, as LISA's ``validate`` scores ReasonSeg.

LISA (``train_ds.py: validate`` with ``utils.intersectionAndUnionGPU(..., K=2, ignore_index=255)``)
counts, per ground-truth mask, the foreground intersection and union after setting the
prediction to "ignore" wherever the ground truth is 255, so ignore pixels count for neither.
Then:

- gIoU = mean over masks of ``intersection / union``, where a mask whose union is empty
  (empty prediction on an empty or fully ignored target) scores 1.0
  (LISA: ``acc_iou = intersection / (union + 1e-5); acc_iou[union == 0] += 1.0``);
- cIoU = sum of intersections / sum of unions over the whole set
  (LISA: ``intersection_meter.sum / (union_meter.sum + 1e-10)``), hence 0.0 when every union is empty.

LLM-Seg40K's evaluation reuses this code, and the DESIGN fixes these semantics for ReasonSeg.
Departure: the divisions here are exact, without LISA's 1e-5 / 1e-10 guards (they only keep its
GPU code from dividing by zero and shift a score by < 1e-5 / union); the empty cases the guards
produce (1.0 per empty-union sample, 0.0 for an all-empty set) are reproduced explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fastreasonseg.metrics.davis import as_mask


def _gt_mask(gt: np.ndarray, name: str) -> np.ndarray:
    """Ground truth as bool; a numeric array must hold only 0/1 so a 0/255 or ignore-labelled
    array is never silently read as foreground (pass ignore regions through ``ignores``)."""
    array = np.asarray(gt)
    if array.dtype != bool and array.ndim == 2 and np.issubdtype(array.dtype, np.number):
        bad = array[(array != 0) & (array != 1)]
        if bad.size:
            raise ValueError(f"{name} must be bool or 0/1, found value {bad.flat[0]!r}; for LISA-style ignore labels "
                             f"pass ignores=[g == 255 for g in gts] and gts=[g == 1 for g in gts]")
    return as_mask(array, name)


def intersection_union(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None,
                       *, index: int | None = None) -> tuple[int, int]:
    """Foreground (intersection, union) pixel counts with ``ignore`` pixels excluded from both."""
    where = "" if index is None else f"[{index}]"
    pred_mask = as_mask(pred, f"preds{where}")
    gt_mask = _gt_mask(gt, f"gts{where}")
    if pred_mask.shape != gt_mask.shape:
        raise ValueError(f"preds{where} and gts{where} shapes differ: {pred_mask.shape} vs {gt_mask.shape}")
    if ignore is not None:
        ignore_mask = as_mask(ignore, f"ignores{where}")
        if ignore_mask.shape != gt_mask.shape:
            raise ValueError(f"ignores{where} shape {ignore_mask.shape} differs from gts{where} shape {gt_mask.shape}")
        keep = ~ignore_mask
        pred_mask, gt_mask = pred_mask & keep, gt_mask & keep
    inter = int(np.count_nonzero(pred_mask & gt_mask))
    union = int(np.count_nonzero(pred_mask | gt_mask))
    return inter, union


def sample_iou(intersection: int, union: int) -> float:
    """One sample's gIoU term: intersection / union, or 1.0 for an empty union (LISA)."""
    return 1.0 if union == 0 else intersection / union


def iou_scores(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray],
               ignores: Sequence[np.ndarray | None] | None = None) -> dict[str, float]:
    """``{"giou", "ciou"}`` over paired (H, W) masks, LISA ``validate`` semantics (module docstring).

    ``preds``: bool or numeric (nonzero = foreground). ``gts``: bool or 0/1. ``ignores``: one
    bool mask (or None) per sample; those pixels count for neither intersection nor union.
    """
    preds, gts = list(preds), list(gts)
    if len(preds) != len(gts):
        raise ValueError(f"got {len(preds)} predictions but {len(gts)} ground-truth masks")
    if not preds:
        raise ValueError("iou_scores needs at least one (pred, gt) pair")
    ignore_list = [None] * len(gts) if ignores is None else list(ignores)
    if len(ignore_list) != len(gts):
        raise ValueError(f"got {len(ignore_list)} ignore masks for {len(gts)} samples")
    total_inter = total_union = 0
    per_sample = []
    for index, (pred, gt, ignore) in enumerate(zip(preds, gts, ignore_list, strict=True)):
        inter, union = intersection_union(pred, gt, ignore, index=index)
        total_inter += inter
        total_union += union
        per_sample.append(sample_iou(inter, union))
    ciou = total_inter / total_union if total_union else 0.0
    return {"giou": float(np.mean(per_sample)), "ciou": float(ciou)}
