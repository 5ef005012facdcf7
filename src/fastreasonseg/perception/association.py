"""Matching a key frame's detections to the live tracks: box IoU + the Hungarian algorithm.

:func:`associate` pairs detections and tracks one-to-one so that the summed IoU of the pairs
is largest (``scipy.optimize.linear_sum_assignment`` on 1 - IoU), keeping only pairs that
overlap by at least ``min_iou``. A detection left over is *fresh* (a new object, a new id) only
if it overlaps no track by ``min_iou``; one that overlaps a track already paired with a better
detection is a *duplicate* (a second box on a tracked object) and starts nothing. Both video
modes use this rule, so a doubled detection never doubles an object.

Departure from SORT/ByteTrack, which associate every frame with a Kalman-filtered motion
model: detections exist only on key frames here, and between them each track's box comes
from its own mask (SAM 2's memory in ``propagate`` mode, the box tracker's prediction in
``detect`` mode), so one IoU assignment per key frame is all that is left to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fastreasonseg.perception.ops import box_iou


@dataclass
class Association:
    """Indices into the detection and track lists given to :func:`associate`."""

    matches: dict[int, int] = field(default_factory=dict)  # detection index -> track index
    fresh: list[int] = field(default_factory=list)  # detections of objects nobody tracks
    duplicates: list[int] = field(default_factory=list)  # detections of an already matched track
    unmatched_tracks: list[int] = field(default_factory=list)


def associate(detection_boxes: np.ndarray, track_boxes: np.ndarray, min_iou: float) -> Association:
    """One-to-one detection-track pairs of largest total IoU, each with IoU >= ``min_iou`` (XYXY pixel boxes)."""
    from scipy.optimize import linear_sum_assignment

    detections = np.asarray(detection_boxes, dtype=np.float64).reshape(-1, 4)
    tracks = np.asarray(track_boxes, dtype=np.float64).reshape(-1, 4)
    if len(detections) == 0 or len(tracks) == 0:
        return Association(fresh=list(range(len(detections))), unmatched_tracks=list(range(len(tracks))))
    overlaps = box_iou(detections, tracks)
    rows, cols = linear_sum_assignment(1.0 - overlaps)
    matches = {int(r): int(c) for r, c in zip(rows, cols, strict=True) if overlaps[r, c] >= min_iou}
    result = Association(matches=matches)
    for index in range(len(detections)):
        if index in matches:
            continue
        (result.duplicates if overlaps[index].max() >= min_iou else result.fresh).append(index)
    claimed = set(matches.values())
    result.unmatched_tracks = [t for t in range(len(tracks)) if t not in claimed]
    return result
