"""Typed answers of the Python API: numpy masks and XYXY boxes per frame, ids, the rollout, its steps, timing.

A :class:`SegmentationResult` wraps the pipeline's :class:`~fastreasonseg.pipeline.segment.SegmentResult`
(the object behind every result.json entry) and the twin it was answered on, so
``to_json()`` is exactly the documented result.json entry and the arrays are views of the same
answer: ``masks[i]`` is the decoded RLE of ``to_json()["frames"][i]["mask"]``. Arrays are
built on first access and kept.

Departure from the paper: the paper returns masks only; the ids, the per-object boxes and the
rollout text are this project's, because a robot acts on objects and a person checks the reasoning.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from fastreasonseg.pipeline.segment import SegmentResult
    from fastreasonseg.reasoning.engine import RolloutResult
    from fastreasonseg.reasoning.protocol import Failure
    from fastreasonseg.twin.core import DigitalTwin, Frame


@dataclass(frozen=True)
class Timing:
    """Where one query's time and tokens went. Perception is charged to the first query after ``set_scene``.

    ``encoded_tokens`` are the prompt tokens the model had to encode (``prompt - cached``): small
    for every query after the first on a scene, because the twin's prefix is reused.
    """

    perception_s: float
    reasoning_s: float
    prompt_tokens: int
    cached_tokens: int
    new_tokens: int

    @property
    def encoded_tokens(self) -> int:
        return self.prompt_tokens - self.cached_tokens


@dataclass(frozen=True)
class Step:
    """One block of the rollout: ``tag`` in reason/plan/results/answer, its text, and what it parsed to.

    ``data`` is the list of tool calls (plan), the tool results (results), the id list (answer),
    or None for the reasoning text and for a block whose JSON was unusable.
    """

    tag: str
    text: str
    data: Any = None


@dataclass(frozen=True)
class FrameAnswer:
    """The answer on one frame: the answer objects visible there, their XYXY pixel boxes and masks."""

    index: int
    time: float
    object_ids: list[int]
    labels: list[str]
    scores: np.ndarray  # (n,) float32 detection scores
    boxes: np.ndarray  # (n, 4) float32 XYXY pixels, aligned with object_ids
    object_masks: np.ndarray  # (n, H, W) bool

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool: the union of the answer objects' masks on this frame."""
        return self.object_masks.any(axis=0)

    def to_detections(self) -> Any:
        """This frame as ``supervision.Detections`` (``pip install 'fastreasonseg[supervision]'``).

        ``xyxy``, ``mask``, ``confidence``, ``tracker_id`` (the twin's track ids) and
        ``data["class_name"]`` (labels); :func:`fastreasonseg.api.convert.twin_from_detections` reads it back.
        """
        from fastreasonseg.api.convert import to_detections

        return to_detections(self)


def frame_answer(frame: Frame, object_ids: list[int], height: int, width: int) -> FrameAnswer:
    """The answer objects of ``object_ids`` present in ``frame`` (an object without a mask counts as its box)."""
    from fastreasonseg.twin.masks import box_to_mask, decode_mask

    present = [frame.object(i) for i in object_ids]
    objects = [obj for obj in present if obj is not None]
    masks = np.zeros((len(objects), height, width), dtype=bool)
    for row, obj in enumerate(objects):
        masks[row] = decode_mask(obj.mask) if obj.mask is not None else box_to_mask(obj.box, height, width)
    return FrameAnswer(index=frame.index, time=frame.time, object_ids=[o.id for o in objects],
                       labels=[o.label for o in objects], scores=np.array([o.score for o in objects], np.float32),
                       boxes=np.array([list(o.box) for o in objects], np.float32).reshape(-1, 4),
                       object_masks=masks)


class SegmentationResult:
    """One query's answer on one scene.

    ``object_ids``: the answer's track ids. ``masks``: (F, H, W) bool, per twin frame, the union of
    the answer's masks (what result.json encodes). ``boxes``: (F, N, 4) float32 XYXY pixels of
    each answer id per frame, NaN where the object is absent. ``frames``: per-frame
    :class:`FrameAnswer` (per-object masks, labels, scores). ``reasoning``: the full rollout text;
    ``steps``: its parsed blocks; ``timing``: :class:`Timing`; ``rollout``: everything the engine
    recorded (failures, tool rounds, notes).
    """

    def __init__(self, segment: SegmentResult, twin: DigitalTwin):
        self.segment = segment
        self.twin = twin

    def __repr__(self) -> str:
        return (f"SegmentationResult(query={self.query!r}, object_ids={self.object_ids}, labels={self.labels}, "
                f"frames={len(self.twin.frames)}, format_ok={self.format_ok})")

    # ------------------------------------------------------------------ what was asked and answered
    @property
    def query(self) -> str:
        return self.segment.query

    @property
    def object_ids(self) -> list[int]:
        return self.segment.object_ids

    @property
    def labels(self) -> list[str]:
        """The label of each answer id (its most frequent label over the frames)."""
        from collections import Counter

        return [Counter(obj.label for _, obj in self.twin.track(i)).most_common(1)[0][0] for i in self.object_ids]

    @property
    def rollout(self) -> RolloutResult:
        return self.segment.rollout

    @property
    def reasoning(self) -> str:
        return self.segment.rollout.text

    @property
    def format_ok(self) -> bool:
        return self.segment.rollout.format_ok

    @property
    def failures(self) -> list[Failure]:
        return list(self.segment.rollout.failures)

    @functools.cached_property
    def steps(self) -> list[Step]:
        parsed = self.segment.rollout.parsed
        plans, results = iter(parsed.plans), iter(parsed.results)
        steps = []
        for block in parsed.blocks:
            data = (next(plans, None) if block.tag == "plan" else next(results, None) if block.tag == "results"
                    else parsed.answer_ids if block.tag == "answer" else None)
            steps.append(Step(tag=block.tag, text=block.content, data=data))
        return steps

    @property
    def timing(self) -> Timing:
        rollout = self.segment.rollout
        return Timing(perception_s=self.segment.perception_s, reasoning_s=self.segment.reasoning_s,
                      prompt_tokens=rollout.prompt_tokens, cached_tokens=rollout.cached_tokens,
                      new_tokens=rollout.new_tokens)

    # ------------------------------------------------------------------ arrays
    @property
    def frame_indices(self) -> list[int]:
        return [frame["index"] for frame in self.segment.frames]

    @functools.cached_property
    def masks(self) -> np.ndarray:
        from fastreasonseg.twin.masks import decode_mask

        source = self.twin.source
        out = np.zeros((len(self.segment.frames), source.height, source.width), dtype=bool)
        for row, frame in enumerate(self.segment.frames):
            out[row] = decode_mask(frame["mask"])
        return out

    @functools.cached_property
    def frames(self) -> list[FrameAnswer]:
        source = self.twin.source
        return [frame_answer(frame, self.object_ids, source.height, source.width) for frame in self.twin.frames]

    @functools.cached_property
    def boxes(self) -> np.ndarray:
        out = np.full((len(self.twin.frames), len(self.object_ids), 4), np.nan, dtype=np.float32)
        column = {object_id: c for c, object_id in enumerate(self.object_ids)}
        for row, frame in enumerate(self.twin.frames):
            for object_id in self.object_ids:
                obj = frame.object(object_id)
                if obj is not None:
                    out[row, column[object_id]] = obj.box
        return out

    def rle(self) -> list[dict[str, Any]]:
        """Per frame ``{"index", "mask": COCO RLE}``, as in result.json."""
        return [dict(frame) for frame in self.segment.frames]

    # ------------------------------------------------------------------ conversions
    def to_json(self) -> dict[str, Any]:
        """The documented result.json entry (docs/DESIGN.md section 8), nothing more."""
        return self.segment.to_json()

    def to_detections(self, frame: int | None = None) -> Any:
        """The answer on one frame (a source frame index; default the first) as ``supervision.Detections``."""
        index = self.twin.frames[0].index if frame is None else frame
        for answer in self.frames:
            if answer.index == index:
                return answer.to_detections()
        raise KeyError(f"frame {index} is not in the scene; frames: {self.frame_indices}")


@dataclass(frozen=True)
class StreamFrame:
    """One frame of :meth:`~fastreasonseg.api.ReasoningSegmenter.stream`.

    ``answer`` is the latest rollout's result over the window of recent frames (shared by the
    frames until the next rollout); ``asked`` says whether the reasoner ran on this frame;
    ``frame`` is the answer on this frame (``frame.mask``, ``frame.boxes``, ``frame.object_ids``).
    """

    frame: FrameAnswer
    answer: SegmentationResult
    asked: bool

    @property
    def index(self) -> int:
        return self.frame.index

    @property
    def object_ids(self) -> list[int]:
        return self.frame.object_ids

    @property
    def mask(self) -> np.ndarray:
        return self.frame.mask

    @property
    def boxes(self) -> np.ndarray:
        return self.frame.boxes
