"""The digital twin (DT) v1: one validated type for image and video scenes.

A twin is a list of frames, each a list of object instances with a persistent track id,
an open-vocabulary label and score, an XYXY pixel box, an optional COCO RLE mask, area,
centroid and depth statistics (see ``docs/DESIGN.md`` for the JSON schema). An image
is a video of one frame.

Construction validates everything and raises :class:`TwinValidationError` whose message
names each bad field by its JSON path (``frames[0].objects[2].box``), never a bare
traceback from deep inside. ``DigitalTwin.from_dict(twin.to_dict())`` is lossless.
The field-by-field parsing lives in :mod:`fastreasonseg.twin.parse`; the error type and
the cross-field rules live in :mod:`fastreasonseg.twin.validation` (re-exported here).

Departures from the paper: the paper describes the DT informally; the schema version,
the normalised depth convention (0 nearest, 1 farthest in the frame) and the rule that an
object without a mask is its box are this project's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fastreasonseg.io import atomic_write_text
from fastreasonseg.twin.masks import RLE, box_to_mask, decode_mask, encode_mask, normalize_rle
from fastreasonseg.twin.validation import BOX_TOLERANCE_PX as BOX_TOLERANCE_PX  # re-exported
from fastreasonseg.twin.validation import SCHEMA, TwinValidationError, semantic_errors

Box = tuple[float, float, float, float]


# --------------------------------------------------------------------------- the types


@dataclass(frozen=True)
class Depth:
    """Normalised depth inside the object's mask: 0 = nearest, 1 = farthest in the frame."""

    mean: float
    std: float

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std}


@dataclass(frozen=True)
class Source:
    """Where the twin came from. ``width``/``height`` in pixels; ``fps`` None for images."""

    kind: Literal["image", "video"]
    width: int
    height: int
    num_frames: int = 1
    path: str | None = None
    fps: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "width": self.width, "height": self.height,
                "fps": self.fps, "num_frames": self.num_frames}


@dataclass(frozen=True)
class TwinObject:
    """One object instance in one frame.

    ``id`` is a track id, the same physical object in every frame. ``box`` is XYXY in
    pixels. ``mask`` is a COCO RLE dict or None (then the box is the mask). ``area`` is the
    foreground pixel count, ``centroid`` the (x, y) centre of mass in pixels.
    """

    id: int
    label: str
    score: float
    box: Box
    mask: RLE | None = None
    area: float = 0.0
    centroid: tuple[float, float] = (0.0, 0.0)
    depth: Depth | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "label": self.label, "score": self.score, "box": list(self.box)}
        if self.mask is not None:
            out["mask"] = {"size": list(self.mask["size"]), "counts": self.mask["counts"]}
        out["area"] = self.area
        out["centroid"] = list(self.centroid)
        out["depth"] = self.depth.to_dict() if self.depth is not None else None
        out["attributes"] = dict(self.attributes)
        return out

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


@dataclass(frozen=True)
class Frame:
    """One time step: ``index`` into the source video, ``time`` in seconds."""

    index: int
    time: float
    objects: tuple[TwinObject, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "time": self.time, "objects": [o.to_dict() for o in self.objects]}

    def object(self, object_id: int) -> TwinObject | None:
        for obj in self.objects:
            if obj.id == object_id:
                return obj
        return None

    @property
    def ids(self) -> list[int]:
        return [o.id for o in self.objects]


@dataclass(frozen=True)
class DigitalTwin:
    """A validated digital twin. Build with :meth:`from_dict`, :meth:`load` or the constructor.

    The constructor runs the cross-field checks (image size, duplicate ids, frame order);
    :meth:`from_dict` additionally checks every field's type and range.
    """

    source: Source
    frames: tuple[Frame, ...]
    schema: str = SCHEMA
    # How the twin was made (``{"perception": {"preset": "fast", "detector_model": ...}}``): a JSON
    # object that must survive a round trip, like ``attributes``; omitted from the JSON when empty.
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        errors = semantic_errors(self)
        if errors:
            raise TwinValidationError(errors)

    # ------------------------------------------------------------------ construction / IO
    @classmethod
    def from_dict(cls, data: Any) -> DigitalTwin:
        """Parse and validate a twin dict (as produced by :meth:`to_dict` or read from JSON)."""
        from fastreasonseg.twin.parse import parse_twin  # parse builds these types: imported on use

        return parse_twin(data)

    @classmethod
    def from_json(cls, text: str) -> DigitalTwin:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TwinValidationError([f"<json>: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"]) from None
        except RecursionError:
            raise TwinValidationError(["<json>: nested too deeply to be a digital twin"]) from None
        try:
            return cls.from_dict(data)
        except RecursionError:
            raise TwinValidationError(["<json>: nested too deeply to be a digital twin"]) from None

    @classmethod
    def load(cls, path: str | Path) -> DigitalTwin:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TwinValidationError([f"<file {path}>: cannot read ({exc})"]) from None
        try:
            return cls.from_json(text)
        except TwinValidationError as exc:
            raise TwinValidationError([f"{path}: {e}" for e in exc.errors]) from None

    def to_dict(self) -> dict[str, Any]:
        out = {"schema": self.schema, "source": self.source.to_dict(), "frames": [f.to_dict() for f in self.frames]}
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def save(self, path: str | Path, indent: int | None = None) -> Path:
        """Write the twin as JSON atomically (temp file + rename)."""
        return atomic_write_text(path, self.to_json(indent=indent))

    # ------------------------------------------------------------------ queries
    @property
    def is_video(self) -> bool:
        return self.source.kind == "video"

    @property
    def track_ids(self) -> list[int]:
        """All track ids, in order of first appearance."""
        seen: dict[int, None] = {}
        for frame in self.frames:
            for obj in frame.objects:
                seen.setdefault(obj.id, None)
        return list(seen)

    def frame(self, index: int) -> Frame:
        """The frame with source index ``index`` (KeyError naming the valid range if absent)."""
        for frame in self.frames:
            if frame.index == index:
                return frame
        raise KeyError(f"no frame with index {index}; frames cover {[f.index for f in self.frames][:10]}")

    def object(self, object_id: int, frame_index: int | None = None) -> TwinObject:
        """The object with track id ``object_id`` in frame ``frame_index`` (default: first frame it is in)."""
        for frame in self.frames:
            if frame_index is not None and frame.index != frame_index:
                continue
            obj = frame.object(object_id)
            if obj is not None:
                return obj
        where = f" in frame {frame_index}" if frame_index is not None else ""
        raise KeyError(f"no object with id {object_id}{where}; ids: {self.track_ids[:30]}")

    def track(self, object_id: int) -> list[tuple[int, TwinObject]]:
        """Every (frame index, object) where track ``object_id`` is present, in time order."""
        return [(f.index, obj) for f in self.frames if (obj := f.object(object_id)) is not None]

    def has_id(self, object_id: int) -> bool:
        return any(f.object(object_id) is not None for f in self.frames)

    def object_mask(self, obj: TwinObject) -> np.ndarray:
        """The object's (H, W) bool mask; its box rasterised when it has no mask."""
        if obj.mask is not None:
            return decode_mask(obj.mask)
        return box_to_mask(obj.box, self.source.height, self.source.width)

    def union_mask(self, object_ids: Iterable[int], frame_index: int) -> np.ndarray:
        """Union of the masks of ``object_ids`` present in frame ``frame_index`` (ids absent there add nothing)."""
        frame = self.frame(frame_index)
        out = np.zeros((self.source.height, self.source.width), dtype=bool)
        for object_id in object_ids:
            obj = frame.object(object_id)
            if obj is not None:
                out |= self.object_mask(obj)
        return out

    def iter_objects(self) -> Iterator[tuple[Frame, TwinObject]]:
        for frame in self.frames:
            for obj in frame.objects:
                yield frame, obj

    # ------------------------------------------------------------------ transformations
    def select(self, object_ids: Iterable[int]) -> DigitalTwin:
        """A twin with only the given track ids (frames kept, even if empty)."""
        keep = set(object_ids)
        frames = tuple(replace(f, objects=tuple(o for o in f.objects if o.id in keep)) for f in self.frames)
        return replace(self, frames=frames)

    def merge(self, other: DigitalTwin, *, reassign_ids: bool = True) -> DigitalTwin:
        """Combine the objects of two twins of the same source frame by frame.

        Frames are matched by index. With ``reassign_ids`` the other twin's ids are offset
        past this twin's largest id so tracks never collide; without it, colliding ids in
        one frame are a validation error.
        """
        if (other.source.width, other.source.height) != (self.source.width, self.source.height):
            raise ValueError(f"cannot merge twins of different sizes: {self.source.width}x{self.source.height} "
                             f"vs {other.source.width}x{other.source.height}")
        offset = (max(self.track_ids, default=-1) + 1) if reassign_ids else 0
        by_index = {f.index: list(f.objects) for f in self.frames}
        times = {f.index: f.time for f in self.frames}
        for frame in other.frames:
            times.setdefault(frame.index, frame.time)
            by_index.setdefault(frame.index, []).extend(replace(o, id=o.id + offset) for o in frame.objects)
        frames = tuple(Frame(index=i, time=times[i], objects=tuple(by_index[i])) for i in sorted(by_index))
        kind = "video" if len(frames) > 1 else self.source.kind
        num_frames = max(self.source.num_frames, other.source.num_frames, frames[-1].index + 1 if frames else 1)
        return DigitalTwin(source=replace(self.source, kind=kind, num_frames=num_frames), frames=frames,
                           metadata=dict(self.metadata))


def make_object(object_id: int, label: str, score: float, box: Box | list[float], *, mask: np.ndarray | RLE | None = None,
                depth: Depth | tuple[float, float] | None = None, attributes: dict[str, Any] | None = None) -> TwinObject:
    """Build a :class:`TwinObject`, computing area and centroid from the mask (or box)."""
    from fastreasonseg.twin.masks import mask_centroid

    box = tuple(float(v) for v in box)
    rle: RLE | None
    if mask is None:
        rle = None
        area = max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])
        centroid = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    else:
        if isinstance(mask, dict):
            rle = normalize_rle(mask)
            array = decode_mask(rle)
        else:
            array = np.asarray(mask, dtype=bool)
            rle = encode_mask(array)
        area = int(array.sum())
        centroid = mask_centroid(array) or ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    if isinstance(depth, tuple):
        depth = Depth(mean=float(depth[0]), std=float(depth[1]))
    return TwinObject(id=int(object_id), label=str(label), score=float(score), box=box, mask=rle, area=area,
                      centroid=(round(centroid[0], 2), round(centroid[1], 2)), depth=depth,
                      attributes=dict(attributes or {}))


def validate_twin(data: Any) -> list[str]:
    """Every problem with a raw twin dict as 'path: message' strings; empty when valid."""
    try:
        DigitalTwin.from_dict(data)
    except TwinValidationError as exc:
        return exc.errors
    return []
