"""Video -> digital twin with persistent track ids: OWLv2 on key frames, masks for every frame in between.

For each processed frame (every ``frame_stride``-th source frame, at most ``max_frames``),
streamed one at a time:

1. The tracker segments every live track on the frame: SAM 2 propagation from its memory
   (``video_mode="propagate"``, :class:`~fastreasonseg.perception.tracker.Sam2VideoTracker`) or
   the SAM 2 image predictor prompted with each track's predicted box (``"detect"``, the fast
   mode, :class:`~fastreasonseg.perception.box_tracker.BoxPromptTracker`).
2. On key frames (every ``keyframe_interval``-th processed frame, and the first) OWLv2 detects
   the vocabulary and detections are matched to the live tracks' mask boxes one-to-one by IoU
   (Hungarian, :func:`~fastreasonseg.perception.association.associate`); a detection that
   overlaps no track by ``match_iou`` is an object that entered: it gets the next unused id and
   the tracker is prompted with its box. In ``detect`` mode matched tracks are re-prompted with
   their detection's box, and a track left unmatched on more than ``max_unconfirmed_keyframes``
   consecutive key frames ends (without a memory, a box prompt can drift onto background).
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
    unconfirmed: int = 0  # consecutive key frames without a matching detection (detect mode)


def new_detections(detections: Sequence[Detection], tracked_boxes: Sequence[tuple[float, float, float, float]],
                   match_iou: float) -> tuple[list[Detection], dict[int, int]]:
    """Split detections into fresh (new objects) and matched (detection index -> tracked box index, one-to-one).

    A detection overlapping a track that a better detection already claimed is neither (a duplicate).
    """
    from fastreasonseg.perception.association import associate

    if not detections:
        return [], {}
    pairs = associate(np.array([d.box for d in detections]), np.array(tracked_boxes).reshape(-1, 4), match_iou)
    return [detections[i] for i in pairs.fresh], pairs.matches


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
        return DigitalTwin(source=source, frames=tuple(frames), metadata=cfg.twin_metadata(self.components.placement_record()))

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

    def _confirm(self, results: dict, tracks: dict[int, Track], anchors: dict[int, tuple[float, ...]]) -> None:
        """Detect mode: re-prompt matched tracks with their detection; end tracks unconfirmed for too long."""
        tracker = self.components.tracker
        if anchors:
            results.update(tracker.anchor(anchors))
        ended = []
        for object_id, track in tracks.items():
            if object_id in anchors:
                continue
            track.unconfirmed += 1
            if track.unconfirmed > self.config.max_unconfirmed_keyframes:
                ended.append(object_id)
        if ended:
            tracker.remove_objects(ended)
            for object_id in ended:
                del tracks[object_id]
                results.pop(object_id, None)

    def _discover(self, image: np.ndarray, labels: Sequence[str], results: dict, tracks: dict[int, Track],
                  next_id: int, step: int) -> int:
        """Run the detector on a key frame; prompt SAM 2 with objects not yet tracked. Returns the next free id."""
        detections = self.components.detector.detect(image, labels)
        live = [(oid, mask_box(r.mask)) for oid, r in results.items() if oid in tracks and r.present]
        live = [(oid, box) for oid, box in live if box is not None]
        if self.config.video_mode == "detect":  # a coasting track (hidden, lost a conflict) matches by its prediction
            seen = {oid for oid, _ in live}
            tracker = self.components.tracker
            live += [(oid, tuple(tracker.predicted_box(oid))) for oid in tracks if oid not in seen]
        fresh, matched = new_detections(detections, [box for _, box in live], self.config.match_iou)
        for det_index, live_index in matched.items():
            track = tracks[live[live_index][0]]
            det = detections[det_index]
            track.score = max(track.score, det.score)
            track.unconfirmed = 0
            for label in [det.label, *det.alt_labels]:
                if label != track.label and label not in track.alt_labels:
                    track.alt_labels.append(label)
        if self.config.video_mode == "detect":
            self._confirm(results, tracks, {live[j][0]: detections[i].box for i, j in matched.items()})
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
