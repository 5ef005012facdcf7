"""Identity switches of a tracker against ground-truth tracks (the IDSW count of the CLEAR MOT metrics).

Per frame, ground-truth objects and predicted tracks are paired one-to-one by mask IoU
(Hungarian, pairs below ``iou_threshold`` dropped). A ground-truth object whose paired track id
differs from the id it was last paired with counts one identity switch (Bernardin & Stiefelhagen,
"Evaluating Multiple Object Tracking Performance: The CLEAR MOT Metrics", 2008). Frames where an
object is unpaired count as misses and do not reset its last id, so losing an object and finding
it again under a new id is a switch too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TrackingCounts:
    """``switches``: identity switches; ``matched``/``missed``: ground-truth object-frames paired / not paired."""

    switches: int
    matched: int
    missed: int


def mask_iou_matrix(gt_masks: Sequence[np.ndarray], pred_masks: Sequence[np.ndarray]) -> np.ndarray:
    """(G, P) IoU of boolean masks; an empty union counts 0."""
    gt = np.stack([np.asarray(m, dtype=bool).ravel() for m in gt_masks]).astype(np.float64)
    pred = np.stack([np.asarray(m, dtype=bool).ravel() for m in pred_masks]).astype(np.float64)
    inter = gt @ pred.T
    union = gt.sum(1)[:, None] + pred.sum(1)[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def identity_switches(gt_frames: Sequence[Mapping[int, np.ndarray]], pred_frames: Sequence[Mapping[int, np.ndarray]],
                      iou_threshold: float = 0.5) -> TrackingCounts:
    """Count identity switches; frame ``t`` of each list maps object id -> (H, W) bool mask."""
    from scipy.optimize import linear_sum_assignment

    if len(gt_frames) != len(pred_frames):
        raise ValueError(f"{len(gt_frames)} ground-truth frames but {len(pred_frames)} predicted frames")
    last_id: dict[int, int] = {}
    switches = matched = missed = 0
    for gt, pred in zip(gt_frames, pred_frames, strict=True):
        gt_ids, pred_ids = list(gt), list(pred)
        pairs: dict[int, int] = {}
        if gt_ids and pred_ids:
            overlaps = mask_iou_matrix([gt[i] for i in gt_ids], [pred[i] for i in pred_ids])
            rows, cols = linear_sum_assignment(-overlaps)
            pairs = {gt_ids[r]: pred_ids[c] for r, c in zip(rows, cols, strict=True) if overlaps[r, c] >= iou_threshold}
        for gt_id in gt_ids:
            if gt_id not in pairs:
                missed += 1
                continue
            matched += 1
            if gt_id in last_id and last_id[gt_id] != pairs[gt_id]:
                switches += 1
            last_id[gt_id] = pairs[gt_id]
    return TrackingCounts(switches=switches, matched=matched, missed=missed)
