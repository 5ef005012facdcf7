"""Spatial DT tools: per-object facts, pairwise relations, depth order, extremes, label filtering, distances.

Each tool measures in one frame, chosen by :func:`~fastreasonseg.twin.tools.common.resolve_frame`;
``extreme`` by ``speed`` (videos only) is the exception and ranks over the clip
(:func:`~fastreasonseg.twin.tools.temporal.speed_extreme`).
"""

from __future__ import annotations

from typing import Any

from fastreasonseg.twin.core import DigitalTwin, Frame, TwinObject
from fastreasonseg.twin.tools.common import (
    CONTAIN_FRACTION,
    DEPTH_MARGIN,
    POSITION_MARGIN,
    SIZE_LARGE,
    SIZE_SMALL,
    ToolError,
    _stored_frame,
    _with_frame,
    area_pct,
    grid_box,
    grid_center,
    gx,
    gy,
    normalized_distance,
    r2,
    region_name,
    resolve_frame,
    sig,
    track_label,
)
from fastreasonseg.twin.tools.temporal import speed_extreme
from fastreasonseg.twin.vocab import label_matches


def _size_class(obj: TwinObject, frame: Frame) -> str:
    areas = sorted(o.area for o in frame.objects)
    median = areas[len(areas) // 2] if len(areas) % 2 else (areas[len(areas) // 2 - 1] + areas[len(areas) // 2]) / 2
    if median <= 0:
        return "medium" if obj.area <= 0 else "large"
    ratio = obj.area / median
    return "small" if ratio < SIZE_SMALL else ("large" if ratio > SIZE_LARGE else "medium")


# --------------------------------------------------------------------------- spatial tools


def attributes(twin: DigitalTwin, ids: list[int], frame: int | None = None) -> dict[str, Any]:
    chosen = resolve_frame(twin, ids, frame)
    objects = []
    for object_id in ids:
        obj = chosen.object(object_id)
        cx, cy = grid_center(twin, obj)
        objects.append({
            "id": object_id, "label": obj.label, "box": grid_box(twin, obj), "area_pct": sig(area_pct(twin, obj)),
            "center": [round(cx), round(cy)], "region": region_name(cx, cy), "size": _size_class(obj, chosen),
            "depth": r2(obj.depth.mean) if obj.depth is not None else None,
        })
    return _with_frame(twin, chosen, {"objects": objects})


def _mask_overlap(twin: DigitalTwin, a: TwinObject, b: TwinObject) -> tuple[int, int, int]:
    """(intersection, area a, area b) in pixels of the two masks (boxes when there is no mask)."""
    # Boxes that do not touch cannot overlap: skip decoding the masks.
    if a.box[2] <= b.box[0] or b.box[2] <= a.box[0] or a.box[3] <= b.box[1] or b.box[3] <= a.box[1]:
        return 0, int(a.area), int(b.area)
    mask_a, mask_b = twin.object_mask(a), twin.object_mask(b)
    return int((mask_a & mask_b).sum()), int(mask_a.sum()), int(mask_b.sum())


def spatial_relations(twin: DigitalTwin, a: TwinObject, b: TwinObject) -> dict[str, Any]:
    """Relations of ``a`` to ``b`` in one frame (no frame bookkeeping; used by tools and data code)."""
    ax, ay = grid_center(twin, a)
    bx, by = grid_center(twin, b)
    relations = []
    if ax < bx - POSITION_MARGIN:
        relations.append("left_of")
    if ax > bx + POSITION_MARGIN:
        relations.append("right_of")
    if ay < by - POSITION_MARGIN:
        relations.append("above")
    if ay > by + POSITION_MARGIN:
        relations.append("below")
    if a.depth is not None and b.depth is not None:
        if a.depth.mean < b.depth.mean - DEPTH_MARGIN:
            relations.append("in_front_of")
        if a.depth.mean > b.depth.mean + DEPTH_MARGIN:
            relations.append("behind")
    inter, area_a, area_b = _mask_overlap(twin, a, b)
    union = area_a + area_b - inter
    if inter > 0:
        relations.append("overlaps")
    if area_b > 0 and area_a > area_b and inter >= CONTAIN_FRACTION * area_b:
        relations.append("contains")
    if area_a > 0 and area_b > area_a and inter >= CONTAIN_FRACTION * area_a:
        relations.append("inside")
    return {"relations": relations, "distance": r2(normalized_distance(twin, a, b)),
            "iou": r2(inter / union) if union > 0 else 0}


def relation(twin: DigitalTwin, a: int, b: int, frame: int | None = None) -> dict[str, Any]:
    if a == b:
        raise ToolError("a and b must be different ids")
    chosen = resolve_frame(twin, [a, b], frame)
    result = {"a": a, "b": b, **spatial_relations(twin, chosen.object(a), chosen.object(b))}
    return _with_frame(twin, chosen, result)


def depth_order(twin: DigitalTwin, ids: list[int], frame: int | None = None) -> dict[str, Any]:
    chosen = resolve_frame(twin, ids, frame)
    with_depth = [(chosen.object(i).depth.mean, i) for i in ids if chosen.object(i).depth is not None]
    result: dict[str, Any] = {"near_to_far": [[i, r2(d)] for d, i in sorted(with_depth)]}
    no_depth = [i for i in ids if chosen.object(i).depth is None]
    if no_depth:
        result["no_depth"] = no_depth
    return _with_frame(twin, chosen, result)


EXTREME_KEYS = ("area", "depth", "x", "y", "width", "height", "score")


def _measure(twin: DigitalTwin, obj: TwinObject, by: str) -> float | None:
    if by == "area":
        return area_pct(twin, obj)
    if by == "depth":
        return obj.depth.mean if obj.depth is not None else None
    if by == "x":
        return grid_center(twin, obj)[0]
    if by == "y":
        return grid_center(twin, obj)[1]
    if by == "width":
        return gx(twin, obj.width)
    if by == "height":
        return gy(twin, obj.height)
    return obj.score


def _format_measure(by: str, value: float) -> float | int:
    if by in ("x", "y", "width", "height"):
        return round(value)
    if by in ("depth", "score"):
        return r2(value)
    return sig(value)


def extreme(twin: DigitalTwin, by: str, order: str, ids: list[int] | None = None,
            frame: int | None = None) -> dict[str, Any]:
    if by == "speed":  # a video-only key (registry), measured over the clip rather than in one frame
        if frame is not None:
            raise ToolError("speed is measured over the whole video; leave out 'frame'")
        return speed_extreme(twin, order, ids)
    if ids is None:
        chosen = _stored_frame(twin, frame) if frame is not None else twin.frames[0]
        candidates = list(chosen.objects)
        if not candidates:
            raise ToolError(f"frame {chosen.index} has no objects")
    else:
        chosen = resolve_frame(twin, ids, frame)
        candidates = [chosen.object(i) for i in ids]
    measured = [(v, o.id) for o in candidates if (v := _measure(twin, o, by)) is not None]
    if not measured:
        raise ToolError(f"none of the objects has a {by}")
    sign = -1.0 if order == "max" else 1.0
    ranked = sorted(measured, key=lambda vi: (sign * vi[0], vi[1]))
    result: dict[str, Any] = {"by": by, "order": order, "id": ranked[0][1], "value": _format_measure(by, ranked[0][0])}
    result["next"] = [ranked[1][1], _format_measure(by, ranked[1][0])] if len(ranked) > 1 else None
    return _with_frame(twin, chosen, result)


def _labels_in(twin: DigitalTwin, frame: int | None) -> list[tuple[int, str]]:
    if frame is not None:
        return [(o.id, o.label) for o in _stored_frame(twin, frame).objects]
    return [(i, track_label(twin, i)) for i in twin.track_ids]


def filter_label(twin: DigitalTwin, label: str, frame: int | None = None) -> dict[str, Any]:
    matches = [(i, lab) for i, lab in _labels_in(twin, frame) if label_matches(label, lab)]
    result: dict[str, Any] = {"label": label, "ids": sorted(i for i, _ in matches),
                              "labels": sorted({lab for _, lab in matches})}
    if frame is not None and twin.is_video:
        result = {"frame": frame, **result}
    return result


def count(twin: DigitalTwin, label: str, frame: int | None = None) -> dict[str, Any]:
    found = filter_label(twin, label, frame)
    return {**{k: v for k, v in found.items() if k != "labels"}, "count": len(found["ids"])}


def nearest_to(twin: DigitalTwin, id: int, ids: list[int] | None = None,
               frame: int | None = None) -> dict[str, Any]:
    if ids is not None:
        others = [i for i in ids if i != id]
        if not others:
            raise ToolError("ids must name at least one object other than id")
        chosen = resolve_frame(twin, [id, *others], frame)
    else:
        chosen = resolve_frame(twin, [id], frame)
        others = [o.id for o in chosen.objects if o.id != id]
    anchor = chosen.object(id)
    distances = sorted((normalized_distance(twin, anchor, chosen.object(i)), i) for i in others)
    return _with_frame(twin, chosen, {"id": id, "nearest": [[i, r2(d)] for d, i in distances]})
