"""Segmentation metrics shared by evaluation and the RL accuracy reward.

- ``j_score`` / ``f_score``: DAVIS region J and boundary F of one frame (video benchmarks).
- ``iou_scores``: LISA gIoU / cIoU over a set of images (ReasonSeg, LLM-Seg40K).
- ``MetricAccumulator``: per-sample scores grouped by category / level / length, with "overall".
"""

from fastreasonseg.metrics.accumulator import MetricAccumulator, SampleScore
from fastreasonseg.metrics.davis import boundary_precision_recall, boundary_tolerance_px, f_score, j_score, seg2bmap
from fastreasonseg.metrics.lisa import intersection_union, iou_scores

__all__ = [
    "MetricAccumulator",
    "SampleScore",
    "boundary_precision_recall",
    "boundary_tolerance_px",
    "f_score",
    "intersection_union",
    "iou_scores",
    "j_score",
    "seg2bmap",
]
