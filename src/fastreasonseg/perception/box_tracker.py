"""The ``detect`` video mode's tracker: SAM 2 image masks prompted with each track's predicted box.

``BoxPromptTracker`` has the interface of :class:`~fastreasonseg.perception.tracker.Sam2VideoTracker`
(``start``, ``step``, ``add_objects``, ``remove_objects``, ``object_ids``), so
:class:`~fastreasonseg.perception.video.VideoTwinBuilder` drives both the same way, plus
:meth:`~BoxPromptTracker.anchor`, which re-prompts matched tracks with their key-frame detection.
Per frame:

1. the SAM 2 image encoder runs once (:meth:`Sam2ImageSegmenter.encode`);
2. every live track is prompted, all in one mask-decoder call, with its predicted box: its last
   mask box moved by its smoothed velocity (constant-velocity motion, as SORT predicts boxes),
   widened by :data:`BOX_MARGIN` on each side so that a moving object stays inside the prompt;
3. one object, one track: when two tracks' masks overlap by more than :data:`DUPLICATE_IOU`
   (two prompts landed on the same object, typically while one object passes in front of
   another), the track whose prompt fits the mask's box best keeps it and the others count as
   absent on this frame;
4. the mask's tight box becomes the track's observed box; a track that is absent (empty mask,
   object score <= 0, or lost a conflict) keeps coasting on its prediction, which is how it
   finds its object again when the two separate.

On key frames the builder associates detections with the tracks (:mod:`fastreasonseg.perception.association`),
re-prompts matched tracks with the detector's box (:meth:`anchor`, which pulls a drifting box
back onto its object) and adds fresh detections as new tracks, both on the embedding the frame
already has. Memory holds one box and one velocity per track, whatever the video's length.

Departure from SAM 2's video predictor (the ``propagate`` mode): there is no memory bank, so
identity rests on box overlap between consecutive frames and on the key-frame association; two
objects that cross can swap (``tests/test_perception_presets.py`` counts identity switches of
both modes on synthetic moving shapes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastreasonseg.perception.ops import box_iou
from fastreasonseg.perception.tracker import TrackedMask
from fastreasonseg.twin.masks import mask_box

# Fraction of the box's width/height added on each side of a predicted box prompt.
BOX_MARGIN = 0.1
# Weight of the newest displacement in the velocity estimate (exponential smoothing).
VELOCITY_SMOOTHING = 0.5
# Mask IoU above which two tracks hold the same object on one frame.
DUPLICATE_IOU = 0.5


@dataclass
class BoxTrack:
    """One track's motion state: last box (XYXY pixels) and velocity of its centre (pixels per frame)."""

    box: np.ndarray
    velocity: np.ndarray
    last_seen: int  # frame index of the last observation
    # (box, velocity, last_seen) before the current frame's first observation, so that a second
    # observation on the same frame (a key frame's detection box) re-estimates the velocity.
    before: tuple[np.ndarray, np.ndarray, int] | None = None


class BoxPromptTracker:
    """Fast video tracking with an image segmenter: ``start`` -> (``step``, ``anchor``, ``add_objects``, ``remove_objects``)*."""

    def __init__(self, segmenter: Any, *, margin: float = BOX_MARGIN):
        self.segmenter = segmenter
        self.margin = margin
        self.tracks: dict[int, BoxTrack] = {}
        self.frame_idx = -1
        self.height = self.width = 0
        self._embedding: Any = None
        self._current: dict[int, TrackedMask] = {}

    def start(self, height: int, width: int) -> None:
        """Begin a new video of frames (height, width); forgets every object."""
        self.tracks = {}
        self.frame_idx = -1
        self.height, self.width = height, width
        self._embedding = None
        self._current = {}

    @property
    def object_ids(self) -> list[int]:
        return list(self.tracks)

    def predicted_box(self, object_id: int) -> np.ndarray:
        """The prompt for track ``object_id`` on the current frame: moved by its velocity, widened, clipped."""
        track = self.tracks[object_id]
        gap = max(1, self.frame_idx - track.last_seen)
        shift = np.tile(track.velocity * gap, 2)
        x1, y1, x2, y2 = track.box + shift
        pad_x, pad_y = self.margin * (x2 - x1), self.margin * (y2 - y1)
        return np.clip([x1 - pad_x, y1 - pad_y, x2 + pad_x, y2 + pad_y], 0, [self.width, self.height] * 2)

    def step(self, image: np.ndarray) -> dict[int, TrackedMask]:
        """Encode the next frame ((H, W, 3) uint8 RGB) and segment every track from its predicted box."""
        if image.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame size {image.shape[1]}x{image.shape[0]} differs from the video's "
                             f"{self.width}x{self.height}; call start() first")
        self.frame_idx += 1
        self._embedding = self.segmenter.encode(image)
        self._current = {}
        ids = list(self.tracks)
        if ids:
            self._current = self._prompt({oid: self.predicted_box(oid) for oid in ids})
        return dict(self._current)

    def anchor(self, boxes: dict[int, Iterable[float]]) -> dict[int, TrackedMask]:
        """Re-prompt tracked objects with better boxes (a key frame's detections) on the current frame."""
        self._require_frame()
        unknown = sorted(set(boxes) - set(self.tracks))
        if unknown:
            raise ValueError(f"object ids {unknown} are not tracked")
        self._current.update(self._prompt(boxes))
        return dict(self._current)

    def add_objects(self, boxes: dict[int, Iterable[float]]) -> dict[int, TrackedMask]:
        """Start tracks (id -> XYXY pixel box) on the current frame; returns every object's mask there."""
        self._require_frame()
        clash = sorted(set(boxes) & set(self.tracks))
        if clash:
            raise ValueError(f"object ids {clash} are already tracked")
        for object_id, box in boxes.items():
            self.tracks[int(object_id)] = BoxTrack(box=np.asarray(list(box), dtype=np.float64),
                                                   velocity=np.zeros(2), last_seen=self.frame_idx)
        self._current.update(self._prompt(boxes))
        return dict(self._current)

    def remove_objects(self, object_ids: Iterable[int]) -> None:
        """End the tracks ``object_ids``."""
        for object_id in object_ids:
            self.tracks.pop(int(object_id), None)
            self._current.pop(int(object_id), None)

    # ------------------------------------------------------------------ internals
    def _require_frame(self) -> None:
        if self._embedding is None:
            raise RuntimeError("this needs a frame: call step() first")

    def _prompt(self, boxes: dict[int, Any]) -> dict[int, TrackedMask]:
        """One decoder call for ``boxes`` on the current embedding; the tracks that keep a mask update their motion."""
        ids = [int(i) for i in boxes]
        if not ids:
            return {}
        prompts = np.array([list(boxes[i]) for i in ids], dtype=np.float64)
        result = self.segmenter.decode(self._embedding, prompts)
        out = {oid: TrackedMask(mask=result.masks[row], presence_logit=float(result.object_logits[row]))
               for row, oid in enumerate(ids)}
        fit = {oid: box_iou(prompts[row:row + 1], np.array([mask_box(out[oid].mask) or (0, 0, 0, 0)]))[0, 0]
               for row, oid in enumerate(ids)}
        others = {oid: tracked for oid, tracked in self._current.items() if oid not in out and tracked.present}
        for object_id in ids:
            mine = out[object_id]
            if not mine.present:
                continue
            rivals = {**{o: t for o, t in out.items() if o != object_id and t.present}, **others}
            for rival_id, rival in rivals.items():
                # A rival from an earlier prompt on this frame holds its mask already: it wins ties.
                rival_fit = fit.get(rival_id, np.inf)
                if _mask_iou(mine.mask, rival.mask) > DUPLICATE_IOU and rival_fit >= fit[object_id]:
                    out[object_id] = TrackedMask(mask=np.zeros_like(mine.mask), presence_logit=-1.0)
                    break
        for object_id in ids:
            box = mask_box(out[object_id].mask) if out[object_id].present else None
            if box is not None:
                self._observe(object_id, np.asarray(box, dtype=np.float64))
        return out

    def _observe(self, object_id: int, box: np.ndarray) -> None:
        track = self.tracks[object_id]
        if track.last_seen < self.frame_idx:
            track.before = (track.box, track.velocity, track.last_seen)
        if track.before is not None:  # re-estimate from the state before this frame
            old_box, old_velocity, seen = track.before
            moved = ((box[:2] + box[2:]) - (old_box[:2] + old_box[2:])) / 2 / (self.frame_idx - seen)
            track.velocity = VELOCITY_SMOOTHING * moved + (1 - VELOCITY_SMOOTHING) * old_velocity
        track.box = box
        track.last_seen = self.frame_idx


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0
