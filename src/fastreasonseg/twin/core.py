"""The digital twin (DT) v1: one validated type for image and video scenes.

A twin is a list of frames, each a list of object instances with a persistent track id,
an open-vocabulary label and score, an XYXY pixel box, an optional COCO RLE mask, area,
centroid and depth statistics (see ``shared/DESIGN.md`` for the JSON schema). An image
is a video of one frame.

Construction validates everything and raises :class:`TwinValidationError` whose message
names each bad field by its JSON path (``frames[0].objects[2].box``), never a bare
traceback from deep inside. ``DigitalTwin.from_dict(twin.to_dict())`` is lossless.

Departures from the paper: the paper describes the DT informally; the schema version,
the normalised depth convention (0 nearest, 1 farthest in the frame) and the rule that an
object without a mask is its box are this project's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fastreasonseg.twin.masks import RLE, box_to_mask, decode_mask, encode_mask, normalize_rle, rle_area, rle_problem

SCHEMA = "fastreasonseg.twin/v1"
Box = tuple[float, float, float, float]
# Boxes may poke out of the frame by a rounding hair (detectors return float boxes).
BOX_TOLERANCE_PX = 1.0


class TwinValidationError(ValueError):
    """A twin failed validation; ``errors`` lists every problem as 'path: message'."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        shown = self.errors[:8]
        more = f"\n  ... and {len(self.errors) - 8} more" if len(self.errors) > 8 else ""
        super().__init__("invalid digital twin:\n  " + "\n  ".join(shown) + more)


# --------------------------------------------------------------------------- validation helpers


class _Checker:
    """Collects 'path: message' errors while converting raw JSON values."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def number(self, value: Any, path: str, *, integer: bool = False, minimum: float | None = None,
               maximum: float | None = None) -> float | int | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(path, f"expected a {'integer' if integer else 'number'}, got {type(value).__name__} {value!r}"[:160])
            return None
        if isinstance(value, int) and abs(value) > 2**53:
            # float() of a huge JSON integer raises OverflowError; no field needs such values.
            self.fail(path, f"number too large: {str(value)[:30]}...")
            return None
        if integer and not float(value).is_integer():
            self.fail(path, f"expected an integer, got {value!r}")
            return None
        if not math.isfinite(value):
            self.fail(path, f"must be finite, got {value!r}")
            return None
        if minimum is not None and value < minimum:
            self.fail(path, f"must be >= {minimum}, got {value!r}")
            return None
        if maximum is not None and value > maximum:
            self.fail(path, f"must be <= {maximum}, got {value!r}")
            return None
        return int(value) if integer else value

    def mapping(self, value: Any, path: str, allowed: frozenset[str] | None = None) -> dict | None:
        if not isinstance(value, dict):
            self.fail(path, f"expected an object, got {type(value).__name__}")
            return None
        if allowed is not None:
            # Unknown fields would be dropped on the next save: reject them instead of losing data.
            unknown = sorted(str(k) for k in value if k not in allowed)
            if unknown:
                self.fail(path, f"unknown fields {unknown} (allowed: {sorted(allowed)}; put extras in 'attributes')")
        return value

    def sequence(self, value: Any, path: str, length: int | None = None) -> list | None:
        if not isinstance(value, (list, tuple)):
            self.fail(path, f"expected a list, got {type(value).__name__}")
            return None
        if length is not None and len(value) != length:
            self.fail(path, f"expected {length} values, got {len(value)}")
            return None
        return list(value)


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

    def __post_init__(self) -> None:
        errors = _semantic_errors(self)
        if errors:
            raise TwinValidationError(errors)

    # ------------------------------------------------------------------ construction / IO
    @classmethod
    def from_dict(cls, data: Any) -> DigitalTwin:
        """Parse and validate a twin dict (as produced by :meth:`to_dict` or read from JSON)."""
        checker = _Checker()
        twin = _parse_twin(data, checker)
        if checker.errors or twin is None:
            raise TwinValidationError(checker.errors or ["<root>: could not parse twin"])
        return twin

    @classmethod
    def from_json(cls, text: str) -> DigitalTwin:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TwinValidationError([f"<json>: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"]) from None
        return cls.from_dict(data)

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
        return {"schema": self.schema, "source": self.source.to_dict(), "frames": [f.to_dict() for f in self.frames]}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def save(self, path: str | Path, indent: int | None = None) -> Path:
        """Write the twin as JSON atomically (temp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json(indent=indent), encoding="utf-8")
        tmp.replace(path)
        return path

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
        return DigitalTwin(source=replace(self.source, kind=kind, num_frames=num_frames), frames=frames)


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


# --------------------------------------------------------------------------- parsing

_SOURCE_FIELDS = frozenset({"kind", "path", "width", "height", "fps", "num_frames"})
_FRAME_FIELDS = frozenset({"index", "time", "objects"})
_OBJECT_FIELDS = frozenset({"id", "label", "score", "box", "mask", "area", "centroid", "depth", "attributes"})
_DEPTH_FIELDS = frozenset({"mean", "std"})
_MASK_FIELDS = frozenset({"size", "counts"})


def _parse_twin(data: Any, c: _Checker) -> DigitalTwin | None:
    root = c.mapping(data, "<root>")
    if root is None:
        return None
    schema = root.get("schema")
    if schema != SCHEMA:
        c.fail("schema", f"expected {SCHEMA!r}, got {schema!r}")
    unknown = set(root) - {"schema", "source", "frames"}
    if unknown:
        c.fail("<root>", f"unknown fields {sorted(unknown)}")
    source = _parse_source(root.get("source"), c)
    raw_frames = c.sequence(root.get("frames"), "frames")
    frames: list[Frame] = []
    for i, raw in enumerate(raw_frames or []):
        frame = _parse_frame(raw, f"frames[{i}]", c, source)
        if frame is not None:
            frames.append(frame)
    if c.errors or source is None:
        return None
    try:
        return DigitalTwin(source=source, frames=tuple(frames), schema=SCHEMA)
    except TwinValidationError as exc:
        c.errors.extend(exc.errors)
        return None


def _parse_source(data: Any, c: _Checker) -> Source | None:
    raw = c.mapping(data, "source", _SOURCE_FIELDS)
    if raw is None:
        return None
    n_errors = len(c.errors)
    kind = raw.get("kind")
    if kind not in ("image", "video"):
        c.fail("source.kind", f"expected 'image' or 'video', got {kind!r}")
    width = c.number(raw.get("width"), "source.width", integer=True, minimum=1)
    height = c.number(raw.get("height"), "source.height", integer=True, minimum=1)
    num_frames = c.number(raw.get("num_frames", 1), "source.num_frames", integer=True, minimum=1)
    path = raw.get("path")
    if path is not None and not isinstance(path, str):
        c.fail("source.path", f"expected a string or null, got {type(path).__name__}")
    fps = raw.get("fps")
    if fps is not None:
        fps = c.number(fps, "source.fps", minimum=0)
    if len(c.errors) > n_errors:
        return None
    return Source(kind=kind, width=width, height=height, num_frames=num_frames, path=path, fps=fps)


def _parse_frame(data: Any, path: str, c: _Checker, source: Source | None) -> Frame | None:
    raw = c.mapping(data, path, _FRAME_FIELDS)
    if raw is None:
        return None
    n_errors = len(c.errors)
    index = c.number(raw.get("index"), f"{path}.index", integer=True, minimum=0)
    time = c.number(raw.get("time", 0.0), f"{path}.time", minimum=0)
    raw_objects = c.sequence(raw.get("objects", []), f"{path}.objects")
    objects = []
    for j, raw_obj in enumerate(raw_objects or []):
        obj = _parse_object(raw_obj, f"{path}.objects[{j}]", c, source)
        if obj is not None:
            objects.append(obj)
    if len(c.errors) > n_errors:
        return None
    return Frame(index=index, time=time, objects=tuple(objects))


def _parse_object(data: Any, path: str, c: _Checker, source: Source | None) -> TwinObject | None:
    raw = c.mapping(data, path, _OBJECT_FIELDS)
    if raw is None:
        return None
    n_errors = len(c.errors)
    object_id = c.number(raw.get("id"), f"{path}.id", integer=True, minimum=0)
    label = raw.get("label")
    if not isinstance(label, str) or not label.strip():
        c.fail(f"{path}.label", f"expected a non-empty string, got {label!r}"[:160])
    score = c.number(raw.get("score", 1.0), f"{path}.score", minimum=0.0, maximum=1.0)
    box_raw = c.sequence(raw.get("box"), f"{path}.box", length=4)
    box = None
    if box_raw is not None:
        values = [c.number(v, f"{path}.box[{k}]") for k, v in enumerate(box_raw)]
        if all(v is not None for v in values):
            box = tuple(float(v) for v in values)
    mask = None
    if raw.get("mask") is not None:
        mask = _parse_mask(raw["mask"], f"{path}.mask", c)
    depth = None
    if raw.get("depth") is not None:
        depth_raw = c.mapping(raw["depth"], f"{path}.depth", _DEPTH_FIELDS)
        if depth_raw is not None:
            mean = c.number(depth_raw.get("mean"), f"{path}.depth.mean", minimum=0.0, maximum=1.0)
            std = c.number(depth_raw.get("std", 0.0), f"{path}.depth.std", minimum=0.0)
            if mean is not None and std is not None:
                depth = Depth(mean=float(mean), std=float(std))
    attributes = raw.get("attributes")
    if attributes is None:
        attributes = {}
    problem = _attributes_problem(attributes)
    if problem is not None:
        c.fail(f"{path}.attributes", problem)
    if len(c.errors) > n_errors:
        return None
    # area and centroid are derived when absent so hand-written twins stay short.
    if "area" in raw:
        area = c.number(raw["area"], f"{path}.area", minimum=0)
    elif mask is not None:
        area = rle_area(mask)
    else:
        area = max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])
    if "centroid" in raw:
        cen = c.sequence(raw["centroid"], f"{path}.centroid", length=2)
        centroid = None
        if cen is not None:
            xs = [c.number(v, f"{path}.centroid[{k}]") for k, v in enumerate(cen)]
            if all(v is not None for v in xs):
                centroid = (float(xs[0]), float(xs[1]))
    elif mask is not None:
        from fastreasonseg.twin.masks import mask_centroid

        found = mask_centroid(decode_mask(mask))
        centroid = (round(found[0], 2), round(found[1], 2)) if found else ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    else:
        centroid = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    if len(c.errors) > n_errors:
        return None
    return TwinObject(id=object_id, label=label, score=float(score), box=box, mask=mask, area=area,
                      centroid=centroid, depth=depth, attributes=attributes)


def _parse_mask(data: Any, path: str, c: _Checker) -> RLE | None:
    raw = c.mapping(data, path, _MASK_FIELDS)
    if raw is None:
        return None
    size = c.sequence(raw.get("size"), f"{path}.size", length=2)
    if size is None:
        return None
    dims = [c.number(v, f"{path}.size[{k}]", integer=True, minimum=1) for k, v in enumerate(size)]
    counts = raw.get("counts")
    if None in dims:
        return None
    if not isinstance(counts, (str, list)):
        c.fail(f"{path}.counts", f"expected a COCO RLE string or a list of run lengths, got {type(counts).__name__}")
        return None
    problem = rle_problem({"size": dims, "counts": counts})
    if problem is not None:
        c.fail(f"{path}.counts", f"not a valid COCO RLE: {problem}"[:200])
        return None
    try:
        rle = normalize_rle({"size": dims, "counts": counts})
        rle_area(rle)
    except Exception as exc:  # pycocotools raises assorted types on input it rejects
        c.fail(f"{path}.counts", f"not a valid COCO RLE ({type(exc).__name__}: {exc})"[:200])
        return None
    return rle


def _attributes_problem(attributes: Any) -> str | None:
    """Why ``attributes`` would not survive a JSON save/load unchanged, or None."""
    if not isinstance(attributes, dict):
        return f"expected an object, got {type(attributes).__name__}"
    try:
        text = json.dumps(attributes, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return f"must be JSON-serialisable without NaN/inf ({exc})"[:200]
    # json.dumps turns int keys into strings and tuples into lists: that is silent change, not a round trip.
    if json.loads(text) != attributes:
        return "must survive a JSON round trip unchanged (string keys, lists not tuples)"
    return None


def _semantic_errors(twin: DigitalTwin) -> list[str]:
    """Cross-field checks that need the whole twin (image size, duplicate ids, frame order)."""
    errors: list[str] = []
    src = twin.source
    if twin.schema != SCHEMA:
        errors.append(f"schema: expected {SCHEMA!r}, got {twin.schema!r}")
    if not twin.frames:
        errors.append("frames: a twin needs at least one frame")
    if src.kind == "image" and len(twin.frames) > 1:
        errors.append(f"frames: an image twin has exactly one frame, got {len(twin.frames)}")
    if len(twin.frames) > src.num_frames:
        errors.append(f"frames: {len(twin.frames)} frames but source.num_frames is {src.num_frames}")
    previous = -1
    for i, frame in enumerate(twin.frames):
        if frame.index <= previous:
            errors.append(f"frames[{i}].index: frame indices must increase, got {frame.index} after {previous}")
        if frame.index >= src.num_frames:
            errors.append(f"frames[{i}].index: {frame.index} is outside source.num_frames={src.num_frames}")
        previous = frame.index
        seen: set[int] = set()
        for j, obj in enumerate(frame.objects):
            path = f"frames[{i}].objects[{j}]"
            if obj.id in seen:
                errors.append(f"{path}.id: duplicate id {obj.id} in frame {frame.index}")
            seen.add(obj.id)
            x1, y1, x2, y2 = obj.box
            if not all(math.isfinite(v) for v in obj.box):
                errors.append(f"{path}.box: values must be finite, got {list(obj.box)}")
                continue
            if x2 < x1 or y2 < y1:
                errors.append(f"{path}.box: XYXY needs x2 >= x1 and y2 >= y1, got {list(obj.box)}")
            tol = BOX_TOLERANCE_PX
            if x1 < -tol or y1 < -tol or x2 > src.width + tol or y2 > src.height + tol:
                errors.append(f"{path}.box: {list(obj.box)} lies outside the {src.width}x{src.height} image")
            if obj.mask is not None and list(obj.mask["size"]) != [src.height, src.width]:
                errors.append(f"{path}.mask.size: {list(obj.mask['size'])} does not match the source "
                              f"[height, width] = [{src.height}, {src.width}]")
            if not math.isfinite(obj.score) or not 0.0 <= obj.score <= 1.0:
                errors.append(f"{path}.score: must be in [0, 1], got {obj.score}")
            if obj.depth is not None:
                if not (math.isfinite(obj.depth.mean) and 0.0 <= obj.depth.mean <= 1.0):
                    errors.append(f"{path}.depth.mean: must be in [0, 1], got {obj.depth.mean}")
                if not (math.isfinite(obj.depth.std) and obj.depth.std >= 0.0):
                    errors.append(f"{path}.depth.std: must be finite and >= 0, got {obj.depth.std}")
            if not (math.isfinite(obj.area) and obj.area >= 0):
                errors.append(f"{path}.area: must be finite and >= 0, got {obj.area}")
            if not all(math.isfinite(v) for v in obj.centroid):
                errors.append(f"{path}.centroid: values must be finite, got {list(obj.centroid)}")
            problem = _attributes_problem(obj.attributes)
            if problem is not None:
                errors.append(f"{path}.attributes: {problem}")
    return errors


def validate_twin(data: Any) -> list[str]:
    """Every problem with a raw twin dict as 'path: message' strings; empty when valid."""
    try:
        DigitalTwin.from_dict(data)
    except TwinValidationError as exc:
        return exc.errors
    return []
