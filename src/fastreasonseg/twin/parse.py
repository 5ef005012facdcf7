"""JSON -> :class:`~fastreasonseg.twin.core.DigitalTwin`: type- and range-check every field.

:func:`parse_twin` is what ``DigitalTwin.from_dict`` runs; it collects every problem (named
by its JSON path) before raising one :class:`~fastreasonseg.twin.validation.TwinValidationError`.
``area`` and ``centroid`` are derived from the mask (or box) when absent.
"""

from __future__ import annotations

from typing import Any

from fastreasonseg.twin.core import Depth, DigitalTwin, Frame, Source, TwinObject
from fastreasonseg.twin.masks import RLE, decode_mask, normalize_rle, rle_area, rle_problem
from fastreasonseg.twin.validation import SCHEMA, Checker, TwinValidationError, attributes_problem


def parse_twin(data: Any) -> DigitalTwin:
    """Parse and validate a twin dict; raises TwinValidationError listing every problem."""
    checker = Checker()
    twin = _parse_twin(data, checker)
    if checker.errors or twin is None:
        raise TwinValidationError(checker.errors or ["<root>: could not parse twin"])
    return twin


_SOURCE_FIELDS = frozenset({"kind", "path", "width", "height", "fps", "num_frames"})
_FRAME_FIELDS = frozenset({"index", "time", "objects"})
_OBJECT_FIELDS = frozenset({"id", "label", "score", "box", "mask", "area", "centroid", "depth", "attributes"})
_DEPTH_FIELDS = frozenset({"mean", "std"})
_MASK_FIELDS = frozenset({"size", "counts"})


def _parse_twin(data: Any, c: Checker) -> DigitalTwin | None:
    root = c.mapping(data, "<root>")
    if root is None:
        return None
    schema = root.get("schema")
    if schema != SCHEMA:
        c.fail("schema", f"expected {SCHEMA!r}, got {schema!r}")
    unknown = set(root) - {"schema", "source", "frames", "metadata"}
    if unknown:
        c.fail("<root>", f"unknown fields {sorted(unknown)}")
    source = _parse_source(root.get("source"), c)
    raw_frames = c.sequence(root.get("frames"), "frames")
    frames: list[Frame] = []
    for i, raw in enumerate(raw_frames or []):
        frame = _parse_frame(raw, f"frames[{i}]", c, source)
        if frame is not None:
            frames.append(frame)
    metadata = root.get("metadata", {})
    problem = attributes_problem(metadata)
    if problem is not None:
        c.fail("metadata", problem)
    if c.errors or source is None:
        return None
    try:
        return DigitalTwin(source=source, frames=tuple(frames), schema=SCHEMA, metadata=dict(metadata))
    except TwinValidationError as exc:
        c.errors.extend(exc.errors)
        return None


def _parse_source(data: Any, c: Checker) -> Source | None:
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


def _parse_frame(data: Any, path: str, c: Checker, source: Source | None) -> Frame | None:
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


def _parse_object(data: Any, path: str, c: Checker, source: Source | None) -> TwinObject | None:
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
    problem = attributes_problem(attributes)
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


def _parse_mask(data: Any, path: str, c: Checker) -> RLE | None:
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

