"""Video -> digital twin with persistent track ids: OWLv2 on key frames, SAM 2 propagation in between.

For each processed frame (every ``frame_stride``-th source frame, at most ``max_frames``),
streamed one at a time:

1. SAM 2 propagates every live track to the frame (:class:`~fastreasonseg.perception.tracker.Sam2VideoTracker`).
2. On key frames (every ``keyframe_interval``-th processed frame, and the first) OWLv2 detects
   the vocabulary; a detection whose box overlaps no live track's mask box by ``match_iou`` is
   an object that entered: it gets the next unused id and SAM 2 is prompted with its box.
3. A track absent (SAM 2 object score <= 0 or empty mask) for more than
   ``max_missing_frames`` processed frames ends and is removed from SAM 2's state; if the
   object comes back later it is detected again under a new id.
4. Depth Anything V2 gives each frame's normalised depth (0 nearest, 1 farthest in the frame).

A track's label and score come from the detection that started it; a higher-scoring matching
detection on a later key frame raises the score. Frames keep their source indices, so a
twin of a strided video has frames 0, s, 2s, ...

Departure from the paper: it does not describe how new objects are discovered after the first
frame; re-detection on key frames with box-overlap matching is this project's choice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastreasonseg.perception.components import ComponentSet, object_from_mask, resolve_labels
from fastreasonseg.perception.config import PerceptionConfig
from fastreasonseg.perception.detector import Detection
from fastreasonseg.perception.media import VideoFrame
from fastreasonseg.perception.ops import box_iou
from fastreasonseg.twin.core import DigitalTwin, Frame, Source
from fastreasonseg.twin.masks import mask_box

log = logging.getLogger(__name__)


@dataclass
class Track:
    """What the builder knows about one live object id."""

    label: str
    score: float
    alt_labels: list[str] = field(default_factory=list)
    missing: int = 0  # consecutive processed frames without the object


def new_detections(detections: Sequence[Detection], tracked_boxes: Sequence[tuple[float, float, float, float]],
                   match_iou: float) -> tuple[list[Detection], dict[int, int]]:
    """Split detections into unmatched (new objects) and matched (detection index -> tracked box index)."""
    if not detections:
        return [], {}
    if not tracked_boxes:
        return list(detections), {}
    overlaps = box_iou(np.array([d.box for d in detections]), np.array(tracked_boxes))
    fresh: list[Detection] = []
    matched: dict[int, int] = {}
    for i, det in enumerate(detections):
        best = int(overlaps[i].argmax())
        if overlaps[i, best] >= match_iou:
            matched[i] = best
        else:
            fresh.append(det)
    return fresh, matched


class VideoTwinBuilder:
    """Builds video twins; models load once (lazily) and serve every call."""

    def __init__(self, config: PerceptionConfig | None = None, *, detector: Any = None, tracker: Any = None,
                 depth: Any = None, components: ComponentSet | None = None):
        self.config = config or (components.config if components is not None else PerceptionConfig())
        self.components = components or ComponentSet(self.config, detector=detector, tracker=tracker, depth=depth)

    def check_available(self) -> None:
        self.components.check_available(video=True)

    def build(self, path: str | Path, *, extra_labels: Sequence[str] = (), queries: Sequence[str] = (),
              progress: Any = None) -> DigitalTwin:
        """Twin of a video file or a folder of frames. ``progress(done, total)`` is called per frame."""
        from fastreasonseg.perception.media import iter_frames, probe_video

        cfg = self.config
        info = probe_video(path)
        expected = self._expected_frames(info.num_frames)
        frames: list[Frame] = []
        source_frames = iter_frames(path, stride=cfg.frame_stride, max_frames=cfg.max_frames)
        for step, frame in enumerate(self.stream(source_frames, extra_labels=extra_labels, queries=queries,
                                                 size=(info.height, info.width), name=str(path))):
            frames.append(frame)
            if progress is not None:
                progress(step + 1, expected)
        last_index = frames[-1].index if frames else -1
        num_frames = max(info.num_frames, last_index + 1)
        source = Source(kind="video", width=info.width, height=info.height, num_frames=num_frames, path=str(path),
                        fps=info.fps)
        return DigitalTwin(source=source, frames=tuple(frames))

    def stream(self, frames: Iterable[VideoFrame], *, extra_labels: Sequence[str] = (), queries: Sequence[str] = (),
               size: tuple[int, int] | None = None, name: str = "video") -> Iterator[Frame]:
        """Twin frames with persistent track ids, one per input frame, each yielded as soon as it is built.

        ``frames`` is any iterable of :class:`~fastreasonseg.perception.media.VideoFrame` (a camera
        loop, a decoder); ``size`` is (height, width), else the first frame's. Nothing is kept
        between frames but the live tracks and SAM 2's bounded memory, so a long stream holds
        flat memory; the caller decides what to keep (:meth:`build` keeps every frame).
        """
        cfg = self.config
        labels = resolve_labels(cfg, extra_labels, queries)
        tracker = self.components.tracker
        tracks: dict[int, Track] = {}
        next_id = 0
        for step, video_frame in enumerate(frames):
            image = video_frame.image
            if step == 0:
                height, width = size or image.shape[:2]
                tracker.start(height, width)
            if image.shape[:2] != (height, width):
                raise ValueError(f"{name}: frame {video_frame.index} is {image.shape[1]}x{image.shape[0]}, "
                                 f"the video is {width}x{height}")
            results = tracker.step(image)
            if step % cfg.keyframe_interval == 0:
                next_id = self._discover(image, labels, results, tracks, next_id, step)
            objects_here = {}
            for object_id, track in list(tracks.items()):
                result = results.get(object_id)
                if result is not None and result.present and int(result.mask.sum()) >= cfg.min_mask_area:
                    track.missing = 0
                    objects_here[object_id] = result.mask
                    continue
                track.missing += 1
                if track.missing > cfg.max_missing_frames:
                    tracker.remove_objects([object_id])
                    del tracks[object_id]
            depth_estimator = self.components.depth
            depth_map = None
            if depth_estimator is not None and objects_here and (cfg.depth_every_frame or step % cfg.keyframe_interval == 0):
                depth_map = depth_estimator.estimate(image)
            objects = []
            for object_id, mask in objects_here.items():
                track = tracks[object_id]
                attributes: dict[str, Any] = {}
                if track.alt_labels:
                    attributes["alt_labels"] = list(track.alt_labels)
                objects.append(object_from_mask(object_id, track.label, track.score, mask, depth_map, attributes))
            yield Frame(index=video_frame.index, time=video_frame.time, objects=tuple(objects))

    def _expected_frames(self, source_frames: int) -> int | None:
        if source_frames <= 0:
            return self.config.max_frames
        sampled = (source_frames + self.config.frame_stride - 1) // self.config.frame_stride
        return min(sampled, self.config.max_frames) if self.config.max_frames else sampled

    def _discover(self, image: np.ndarray, labels: Sequence[str], results: dict, tracks: dict[int, Track],
                  next_id: int, step: int) -> int:
        """Run the detector on a key frame; prompt SAM 2 with objects not yet tracked. Returns the next free id."""
        detections = self.components.detector.detect(image, labels)
        live = [(oid, mask_box(r.mask)) for oid, r in results.items() if oid in tracks and r.present]
        live = [(oid, box) for oid, box in live if box is not None]
        fresh, matched = new_detections(detections, [box for _, box in live], self.config.match_iou)
        for det_index, live_index in matched.items():
            track = tracks[live[live_index][0]]
            det = detections[det_index]
            track.score = max(track.score, det.score)
            for label in [det.label, *det.alt_labels]:
                if label != track.label and label not in track.alt_labels:
                    track.alt_labels.append(label)
        room = max(0, self.config.max_objects - len(tracks))
        if len(fresh) > room:
            log.info("frame step %d: %d new object(s) beyond max_objects=%d not tracked", step, len(fresh) - room,
                     self.config.max_objects)
            fresh = fresh[:room]
        if not fresh:
            return next_id
        prompts = {}
        for det in fresh:
            tracks[next_id] = Track(label=det.label, score=det.score, alt_labels=list(det.alt_labels))
            prompts[next_id] = det.box
            next_id += 1
        results.clear()
        results.update(self.components.tracker.add_objects(prompts))
        return next_id
