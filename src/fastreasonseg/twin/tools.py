"""DT tools: the whitelist of pure functions the reasoner may call inside ``<plan>``.

A call is parsed JSON ``{"tool": name, "args": {...}}``; :func:`run_tool` validates it
against the tool's argument schema and returns ``{"tool", "ok": True, "result"}`` or
``{"tool", "ok": False, "error": "<message>"}``. It never raises, whatever the input (the
input is LLM output), and nothing in a call is ever executed as code.

Conventions shared with :mod:`fastreasonseg.twin.serialize`, so the model sees one coordinate
system in the scene text and in tool results:

- positions on a 0-1000 grid per axis (x / width * 1000, y / height * 1000), integers;
  boxes ``[x1, y1, x2, y2]``; ``center`` is the mask centroid;
- ``area_pct``: mask area as a percentage of the image (3 significant digits);
- ``depth``: mean normalised depth in the mask, 0 nearest .. 1 farthest in that frame;
- distances are between centroids in pixels divided by the image diagonal (0..1);
- video times ``t`` in seconds; ``frame`` is a frame index of the source video.

Spatial tools take an optional ``frame``. Default: the first frame in which all the given
ids are visible (``extreme`` without ids: the twin's first frame; ``nearest_to`` without
ids: the first frame with ``id``; ``filter_label``/``count`` without frame: every track,
by its most frequent label). When the ids never appear together the tool returns an error
naming where each id is visible, so the model can pick a frame. Results from videos carry
the ``frame`` and ``t`` they were measured in; image results do not (one frame).

Helpers for other code (data generation, rewards) that must agree with the tools:
:func:`spatial_relations`, :func:`track_motion`, :func:`track_label`, :func:`grid_box`,
:func:`grid_center`, :func:`area_pct`.

Thresholds (module constants, one place to tune): left/right/above/below need the
centroids to differ by more than ``POSITION_MARGIN`` grid units; in front/behind by more than
``DEPTH_MARGIN``; ``contains``/``inside`` need 90 % of the smaller mask inside the larger;
an object "moves" when its centroid gets more than ``MOVE_THRESHOLD`` grid units from its
start or its depth changes by more than ``DEPTH_MOVE_THRESHOLD``.

Departures from the paper: the paper lists the kinds of tools (size, position, spatial
relations, depth order, distances, counting, label filtering, temporal first/last seen,
displacement, speed, direction, presence) but not their names, arguments or outputs; all
of those, the thresholds and the label matching rule (:mod:`fastreasonseg.twin.vocab`) are
this project's. ``compare_position`` (overtaking-type queries) is an addition.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from fastreasonseg.twin.core import DigitalTwin, Frame, TwinObject
from fastreasonseg.twin.vocab import label_matches

GRID = 1000
POSITION_MARGIN = 20.0  # grid units: 2 % of the image side
DEPTH_MARGIN = 0.05
CONTAIN_FRACTION = 0.9
MOVE_THRESHOLD = 30.0  # grid units
DEPTH_MOVE_THRESHOLD = 0.1
SIZE_SMALL, SIZE_LARGE = 0.5, 2.0  # area relative to the median area of the frame's objects
MAX_IDS = 500
MAX_STR = 200
MAX_PLAN_CALLS = 32


class ToolError(Exception):
    """A call that cannot be answered; its message goes back to the model as the error."""


class ArgSpec(NamedTuple):
    """One tool argument: ``type`` in {"id", "ids", "int", "num", "str"}; ``choices`` for enums."""

    type: str
    required: bool
    description: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class ToolSpec:
    """A whitelisted tool: ``fn(twin, **args)`` returns a JSON-able result or raises ToolError."""

    name: str
    description: str
    args: dict[str, ArgSpec]
    fn: Callable[..., Any]
    returns: str
    video_only: bool = False


# --------------------------------------------------------------------------- number formatting


def sig(value: float, digits: int = 3) -> float | int:
    """Round to ``digits`` significant digits; integral results become ints (fewer tokens)."""
    if not math.isfinite(value) or value == 0:
        return 0
    rounded = round(value, digits - 1 - math.floor(math.log10(abs(value))))
    return int(rounded) if float(rounded).is_integer() else rounded


def r2(value: float) -> float | int:
    """Two decimals (depth, distances in 0..1); integral results become ints."""
    rounded = round(float(value), 2)
    return int(rounded) if rounded.is_integer() else rounded


def gx(twin: DigitalTwin, x: float) -> float:
    return x / twin.source.width * GRID


def gy(twin: DigitalTwin, y: float) -> float:
    return y / twin.source.height * GRID


def grid_box(twin: DigitalTwin, obj: TwinObject) -> list[int]:
    x1, y1, x2, y2 = obj.box
    return [round(gx(twin, x1)), round(gy(twin, y1)), round(gx(twin, x2)), round(gy(twin, y2))]


def grid_center(twin: DigitalTwin, obj: TwinObject) -> tuple[float, float]:
    return gx(twin, obj.centroid[0]), gy(twin, obj.centroid[1])


def area_pct(twin: DigitalTwin, obj: TwinObject) -> float:
    return 100.0 * obj.area / (twin.source.width * twin.source.height)


def region_name(x: float, y: float) -> str:
    """Which ninth of the image a grid point falls in: "top-left" .. "center" .. "bottom-right"."""
    col = "left" if x < GRID / 3 else ("right" if x > 2 * GRID / 3 else "")
    row = "top" if y < GRID / 3 else ("bottom" if y > 2 * GRID / 3 else "")
    if row and col:
        return f"{row}-{col}"
    return row or col or "center"


def normalized_distance(twin: DigitalTwin, a: TwinObject, b: TwinObject) -> float:
    """Centroid distance in pixels divided by the image diagonal."""
    diagonal = math.hypot(twin.source.width, twin.source.height)
    return math.hypot(a.centroid[0] - b.centroid[0], a.centroid[1] - b.centroid[1]) / diagonal


# --------------------------------------------------------------------------- twin lookups


def _frame_span(twin: DigitalTwin, object_id: int) -> str:
    indices = [f.index for f in twin.frames if f.object(object_id) is not None]
    if not indices:
        return f"{object_id}: not in the twin"
    if len(indices) == 1:
        return f"{object_id}: frame {indices[0]}"
    return f"{object_id}: frames {indices[0]}-{indices[-1]}"


def _check_ids(twin: DigitalTwin, ids: list[int]) -> None:
    known = set(twin.track_ids)
    missing = [i for i in ids if i not in known]
    if missing:
        shown = sorted(known)[:40]
        more = " ..." if len(known) > 40 else ""
        raise ToolError(f"no object with id {', '.join(map(str, missing))} in the twin; valid ids: {shown}{more}")


def _stored_frame(twin: DigitalTwin, index: int) -> Frame:
    for frame in twin.frames:
        if frame.index == index:
            return frame
    first, last = twin.frames[0].index, twin.frames[-1].index
    if not first <= index <= last:
        raise ToolError(f"frame {index} is out of range; frames run {first}-{last}")
    nearest = sorted(twin.frames, key=lambda f: (abs(f.index - index), f.index))[:2]
    raise ToolError(f"frame {index} is not in the twin (frames are sampled); nearest: {sorted(f.index for f in nearest)}")


def resolve_frame(twin: DigitalTwin, ids: list[int], frame: int | None) -> Frame:
    """The frame a spatial tool measures in (rule in the module docstring); ToolError if none fits."""
    _check_ids(twin, ids)
    if frame is not None:
        chosen = _stored_frame(twin, frame)
        absent = [i for i in ids if chosen.object(i) is None]
        if absent:
            spans = "; ".join(_frame_span(twin, i) for i in absent)
            raise ToolError(f"id {', '.join(map(str, absent))} not visible in frame {frame} ({spans})")
        return chosen
    for candidate in twin.frames:
        if all(candidate.object(i) is not None for i in ids):
            return candidate
    spans = "; ".join(_frame_span(twin, i) for i in ids)
    raise ToolError(f"ids {ids} are never visible in the same frame ({spans}); pass 'frame'")


def track_label(twin: DigitalTwin, object_id: int) -> str:
    """The track's most frequent label (ties: the earliest seen)."""
    counts: dict[str, int] = {}
    for _, obj in twin.track(object_id):
        counts[obj.label] = counts.get(obj.label, 0) + 1
    return max(counts, key=lambda lab: counts[lab]) if counts else ""


def _with_frame(twin: DigitalTwin, frame: Frame, result: dict[str, Any]) -> dict[str, Any]:
    """Add the frame index (and time) to a result, for videos only: images need no frame."""
    if twin.is_video:
        return {"frame": frame.index, "t": sig(frame.time), **result}
    return result


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


# --------------------------------------------------------------------------- temporal tools


def track_info(twin: DigitalTwin, ids: list[int]) -> dict[str, Any]:
    _check_ids(twin, ids)
    tracks = []
    for object_id in ids:
        frames = [f for f in twin.frames if f.object(object_id) is not None]
        tracks.append({"id": object_id, "label": track_label(twin, object_id), "first_frame": frames[0].index,
                       "last_frame": frames[-1].index, "first_t": sig(frames[0].time), "last_t": sig(frames[-1].time),
                       "n_frames": len(frames)})
    return {"tracks": tracks}


@dataclass(frozen=True)
class TrackMotion:
    """Motion of one track between its first and last visible frames (grid units, seconds)."""

    displacement: tuple[float, float]
    depth_change: float | None
    path_length: float
    duration: float
    moves: bool
    direction: str
    start_index: int | None  # frame index where it first leaves its start (None: never moves)
    stop_index: int | None  # frame index from which it stays near its end position


def _positions(twin: DigitalTwin, object_id: int) -> list[tuple[Frame, float, float, float | None]]:
    out = []
    for frame in twin.frames:
        obj = frame.object(object_id)
        if obj is not None:
            x, y = grid_center(twin, obj)
            out.append((frame, x, y, obj.depth.mean if obj.depth is not None else None))
    return out


def track_motion(twin: DigitalTwin, object_id: int) -> TrackMotion:
    """How a track moves; ``moves`` when it ever gets ``MOVE_THRESHOLD`` from its start (or its depth does)."""
    points = _positions(twin, object_id)
    first, last = points[0], points[-1]
    dx, dy = last[1] - first[1], last[2] - first[2]
    depth_change = last[3] - first[3] if first[3] is not None and last[3] is not None else None
    path = sum(math.hypot(b[1] - a[1], b[2] - a[2]) for a, b in itertools.pairwise(points))

    def away(p: tuple, q: tuple) -> bool:
        if math.hypot(p[1] - q[1], p[2] - q[2]) > MOVE_THRESHOLD:
            return True
        return p[3] is not None and q[3] is not None and abs(p[3] - q[3]) > DEPTH_MOVE_THRESHOLD

    start_index = next((p[0].index for p in points if away(p, first)), None)
    moves = start_index is not None
    stop_index = None
    if moves:
        # -1 when no point is ever far from the end position: it was near its end all along
        last_away = max((k for k, p in enumerate(points) if away(p, last)), default=-1)
        stop_index = points[min(last_away + 1, len(points) - 1)][0].index
    direction = "static"
    if moves:
        vx, vy, vd = dx, dy, depth_change
        if math.hypot(vx, vy) <= MOVE_THRESHOLD and (vd is None or abs(vd) <= DEPTH_MOVE_THRESHOLD):
            # it came back: describe its largest excursion instead of a near-zero net move
            far = max(points, key=lambda p: math.hypot(p[1] - first[1], p[2] - first[2]))
            vx, vy = far[1] - first[1], far[2] - first[2]
            vd = far[3] - first[3] if far[3] is not None and first[3] is not None else None
        # depth 0..1 spans the scene like the 0..1000 grid spans the image: compare on one scale
        candidates = {"right": vx, "left": -vx, "down": vy, "up": -vy}
        if vd is not None:
            candidates.update({"away": vd * GRID, "toward camera": -vd * GRID})
        direction = max(candidates, key=lambda k: candidates[k])
    return TrackMotion(displacement=(dx, dy), depth_change=depth_change, path_length=path,
                       duration=last[0].time - first[0].time, moves=moves, direction=direction,
                       start_index=start_index, stop_index=stop_index)


def motion(twin: DigitalTwin, ids: list[int]) -> dict[str, Any]:
    _check_ids(twin, ids)
    out = []
    for object_id in ids:
        m = track_motion(twin, object_id)
        out.append({"id": object_id, "moves": m.moves, "direction": m.direction,
                    "displacement": [round(m.displacement[0]), round(m.displacement[1])],
                    "depth_change": r2(m.depth_change) if m.depth_change is not None else None,
                    "speed": sig(m.path_length / m.duration) if m.duration > 0 else 0})
    return {"motion": out}


def present_at(twin: DigitalTwin, frame: int | None = None, time: float | None = None) -> dict[str, Any]:
    if (frame is None) == (time is None):
        raise ToolError("give exactly one of frame or time")
    if frame is not None:
        chosen = _stored_frame(twin, frame)
    else:
        first, last = twin.frames[0].time, twin.frames[-1].time
        step = (last - first) / max(1, len(twin.frames) - 1)
        if time < first - step or time > last + step:
            raise ToolError(f"time {time} is out of range; the video spans {sig(first)}-{sig(last)} s")
        chosen = min(twin.frames, key=lambda f: (abs(f.time - time), f.index))
    return {"frame": chosen.index, "t": sig(chosen.time), "ids": sorted(chosen.ids)}


EVENTS = ("first_seen", "last_seen", "starts_moving", "stops_moving")


def event_order(twin: DigitalTwin, ids: list[int], event: str) -> dict[str, Any]:
    _check_ids(twin, ids)
    times = {f.index: f.time for f in twin.frames}
    when: list[tuple[float, int, int]] = []
    never: list[int] = []
    for object_id in ids:
        if event in ("first_seen", "last_seen"):
            track = twin.track(object_id)
            index = track[0][0] if event == "first_seen" else track[-1][0]
        else:
            m = track_motion(twin, object_id)
            index = m.start_index if event == "starts_moving" else m.stop_index
        if index is None:
            never.append(object_id)
        else:
            when.append((times[index], index, object_id))
    result: dict[str, Any] = {"event": event,
                              "order": [{"id": i, "frame": index, "t": sig(t)} for t, index, i in sorted(when)]}
    if never:
        result["never"] = never
    return result


_AXIS_WORDS = {"x": ("left of", "right of"), "y": ("above", "below"), "depth": ("in front of", "behind")}


def compare_position(twin: DigitalTwin, a: int, b: int, axis: str) -> dict[str, Any]:
    if a == b:
        raise ToolError("a and b must be different ids")
    _check_ids(twin, [a, b])
    samples = []  # (frame, coordinate of a, coordinate of b)
    for frame in twin.frames:
        oa, ob = frame.object(a), frame.object(b)
        if oa is None or ob is None:
            continue
        if axis == "depth":
            if oa.depth is None or ob.depth is None:
                continue
            samples.append((frame, oa.depth.mean * GRID, ob.depth.mean * GRID))
        else:
            k = 0 if axis == "x" else 1
            samples.append((frame, grid_center(twin, oa)[k], grid_center(twin, ob)[k]))
    if not samples:
        spans = "; ".join(_frame_span(twin, i) for i in (a, b))
        raise ToolError(f"ids {a} and {b} are never visible together{' with depth' if axis == 'depth' else ''} ({spans})")
    less, more = _AXIS_WORDS[axis]

    def state(pa: float, pb: float) -> int:
        margin = DEPTH_MARGIN * GRID if axis == "depth" else POSITION_MARGIN
        return -1 if pa < pb - margin else (1 if pa > pb + margin else 0)

    def words(s: int) -> str:
        return f"{a} {less} {b}" if s < 0 else (f"{a} {more} {b}" if s > 0 else f"{a} level with {b}")

    flips = []
    settled = 0
    for frame, pa, pb in samples:
        s = state(pa, pb)
        if s != 0 and settled != 0 and s != settled:
            flips.append({"frame": frame.index, "t": sig(frame.time), "now": words(s)})
        if s != 0:
            settled = s
    first, last = samples[0], samples[-1]
    # "ahead" = further along the pair's common direction of travel on this axis.
    travel = (last[1] - first[1]) + (last[2] - first[2])

    def ahead(pa: float, pb: float) -> int | None:
        s = state(pa, pb)
        if s == 0 or abs(travel) <= MOVE_THRESHOLD:
            return None
        return a if (s > 0) == (travel > 0) else b

    start_ahead, end_ahead = ahead(first[1], first[2]), ahead(last[1], last[2])
    overtakes = end_ahead if flips and start_ahead is not None and end_ahead is not None and start_ahead != end_ahead else None
    return {"a": a, "b": b, "axis": axis,
            "start": {"frame": first[0].index, "t": sig(first[0].time), "now": words(state(first[1], first[2]))},
            "end": {"frame": last[0].index, "t": sig(last[0].time), "now": words(state(last[1], last[2]))},
            "flips": flips, "ahead_start": start_ahead, "ahead_end": end_ahead, "overtakes": overtakes}


# --------------------------------------------------------------------------- registry

_FRAME = ArgSpec("int", False, "frame index (default: first frame where all ids are visible)")
_LABEL_FRAME = ArgSpec("int", False, "only objects visible in this frame (default: the whole video)")
_IDS = ArgSpec("ids", True, "object ids")

TOOLS: dict[str, ToolSpec] = {spec.name: spec for spec in (
    ToolSpec("attributes", "per-object facts", {"ids": _IDS, "frame": _FRAME}, attributes,
             "per id: label, box, area_pct, center, region, size (vs scene), depth"),
    ToolSpec("relation", "spatial relation of a to b", {
        "a": ArgSpec("id", True, "object id"), "b": ArgSpec("id", True, "object id"), "frame": _FRAME}, relation,
        "relations (left_of right_of above below in_front_of behind overlaps contains inside), distance, iou"),
    ToolSpec("depth_order", "ids nearest to farthest", {"ids": _IDS, "frame": _FRAME}, depth_order,
             "near_to_far [[id, depth]]"),
    ToolSpec("extreme", "the id with the largest/smallest measure", {
        "by": ArgSpec("str", True, "what to compare", EXTREME_KEYS),
        "order": ArgSpec("str", True, "max or min", ("max", "min")),
        "ids": ArgSpec("ids", False, "candidates (default: all objects in the frame)"), "frame": _FRAME}, extreme,
        "id, value, next [id, value]; x,y = center, min y = highest, min depth = nearest"),
    ToolSpec("filter_label", "ids whose label matches (plural/synonym aware)", {
        "label": ArgSpec("str", True, "object name, e.g. cups"), "frame": _LABEL_FRAME}, filter_label,
        "ids, labels"),
    ToolSpec("count", "how many objects match a label", {
        "label": ArgSpec("str", True, "object name"), "frame": _LABEL_FRAME}, count, "count, ids"),
    ToolSpec("nearest_to", "other objects by distance to id", {
        "id": ArgSpec("id", True, "anchor object id"),
        "ids": ArgSpec("ids", False, "candidates (default: all others)"), "frame": _FRAME}, nearest_to,
        "nearest [[id, distance]] closest first"),
    ToolSpec("track_info", "when each id is visible", {"ids": _IDS}, track_info,
             "per id: first/last frame and t, n_frames", video_only=True),
    ToolSpec("motion", "how each id moves", {"ids": _IDS}, motion,
             "per id: moves, direction, displacement [dx, dy], depth_change, speed (grid/s)", video_only=True),
    ToolSpec("present_at", "ids visible at a frame or time", {
        "frame": ArgSpec("int", False, "frame index"), "time": ArgSpec("num", False, "seconds")}, present_at,
        "frame, t, ids (give frame or time)", video_only=True),
    ToolSpec("event_order", "ids ordered by when an event happens", {
        "ids": _IDS, "event": ArgSpec("str", True, "which event", EVENTS)}, event_order,
        "order [{id, frame, t}], never", video_only=True),
    ToolSpec("compare_position", "who is ahead over time on an axis", {
        "a": ArgSpec("id", True, "object id"), "b": ArgSpec("id", True, "object id"),
        "axis": ArgSpec("str", True, "x, y or depth", ("x", "y", "depth"))}, compare_position,
        "start, end, flips [{frame, t}], ahead_start, ahead_end, overtakes", video_only=True),
)}


def tool_names(video: bool | None = None) -> list[str]:
    """Tool names available for an image twin (``video=False``), a video twin (True) or any (None)."""
    return [name for name, spec in TOOLS.items() if video is not False or not spec.video_only]


def tool_contracts_text(video: bool | None = None) -> str:
    """One line per tool, ``name(args) -> returns``, for the reasoner's system prompt.

    ``video=False`` lists the image tools without the ``frame`` argument (an image has one
    frame); ``True``/``None`` list every tool. Optional arguments end in ``?``; enumerated
    values are given as ``by=area|depth|...``. Units are not repeated here: the serialised
    twin's header states them. Size, SmolLM2-135M tokenizer (estimate of
    :func:`fastreasonseg.twin.serialize.estimate_tokens` in brackets): 200 (234) tokens for
    images, 382 (440) for videos; reproduce with ``serialize.token_report()``.
    """
    lines = ['Tools, called as <plan>[{"tool": name, "args": {...}}]</plan>; optional args end in ?:']
    for name in tool_names(video):
        spec = TOOLS[name]
        parts = []
        for arg, a in spec.args.items():
            if video is False and arg == "frame" and not spec.video_only:
                continue
            text = f"{arg}={'|'.join(a.choices)}" if a.choices else arg
            parts.append(text + ("" if a.required else "?"))
        lines.append(f"{name}({', '.join(parts)}) -> {spec.returns}")
    if video is not False:
        lines.append("frame? default: first frame with all ids (filter_label/count: whole video).")
    return "\n".join(lines)


# --------------------------------------------------------------------------- dispatcher


def _check_arg(name: str, spec: ArgSpec, value: Any) -> Any:
    """The validated value, or raise ToolError saying what was expected."""

    def integer(v: Any, what: str) -> int:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
            raise ToolError(f"argument '{name}' must be {what}, got {json.dumps(v)[:60] if _jsonable(v) else type(v).__name__}")
        if abs(v) > 2**31:
            raise ToolError(f"argument '{name}' is out of range: {v!r}"[:120])
        return int(v)

    if spec.type == "id":
        value = integer(value, "an object id (integer)")
    elif spec.type == "int":
        value = integer(value, "an integer")
    elif spec.type == "ids":
        if not isinstance(value, list):
            raise ToolError(f"argument '{name}' must be a list of object ids, e.g. [3, 8]; got {type(value).__name__}")
        if not value:
            raise ToolError(f"argument '{name}' must not be empty")
        if len(value) > MAX_IDS:
            raise ToolError(f"argument '{name}' has {len(value)} ids; at most {MAX_IDS}")
        value = list(dict.fromkeys(integer(v, "a list of object ids (integers)") for v in value))
    elif spec.type == "num":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ToolError(f"argument '{name}' must be a number")
        value = float(value)
    elif spec.type == "str":
        if not isinstance(value, str) or not value.strip():
            raise ToolError(f"argument '{name}' must be a non-empty string")
        if len(value) > MAX_STR:
            raise ToolError(f"argument '{name}' is too long ({len(value)} characters)")
        if spec.choices:
            if value not in spec.choices:
                raise ToolError(f"argument '{name}' must be one of {list(spec.choices)}, got {value[:40]!r}")
    return value


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def _validate_call(twin: DigitalTwin, call: Any) -> tuple[ToolSpec, dict[str, Any]]:
    if not isinstance(call, dict):
        raise ToolError(f'a call must be an object {{"tool": name, "args": {{...}}}}, got {type(call).__name__}')
    extra = sorted(str(k)[:40] for k in call if k not in ("tool", "args"))
    if extra:
        raise ToolError(f"unexpected keys {extra} in the call; only 'tool' and 'args'")
    name = call.get("tool")
    if not isinstance(name, str) or name not in TOOLS:
        shown = repr(name)[:40] if isinstance(name, str) else ("missing" if name is None else type(name).__name__)
        raise ToolError(f"unknown tool {shown}; valid tools: {', '.join(tool_names(twin.is_video))}")
    spec = TOOLS[name]
    if spec.video_only and not twin.is_video:
        raise ToolError(f"'{name}' needs a video; this twin is an image")
    args = call.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ToolError(f"'args' must be an object, got {type(args).__name__}")
    unknown = sorted(str(k)[:40] for k in args if k not in spec.args)
    if unknown:
        raise ToolError(f"unknown argument {', '.join(unknown)} for {name}; arguments: {', '.join(spec.args)}")
    missing = [k for k, a in spec.args.items() if a.required and k not in args]
    if missing:
        raise ToolError(f"missing argument {', '.join(missing)} for {name}; arguments: {', '.join(spec.args)}")
    checked = {}
    for key, value in args.items():
        if value is None and not spec.args[key].required:
            continue  # an explicit null means "use the default"
        checked[key] = _check_arg(key, spec.args[key], value)
    return spec, checked


def run_tool(twin: DigitalTwin, call: Any) -> dict[str, Any]:
    """Execute one call; ``{"tool", "ok": True, "result"}`` or ``{"tool", "ok": False, "error"}``. Never raises."""
    name = call.get("tool") if isinstance(call, dict) and isinstance(call.get("tool"), str) else None
    name = name[:60] if name is not None else None
    try:
        if not isinstance(twin, DigitalTwin):
            raise ToolError(f"no digital twin to run on (got {type(twin).__name__})")
        spec, args = _validate_call(twin, call)
        result = spec.fn(twin, **args)
        return {"tool": name, "ok": True, "result": result}
    except ToolError as exc:
        return {"tool": name, "ok": False, "error": str(exc)}
    except Exception as exc:  # a bug in a tool must not crash a rollout; the message says it is ours
        return {"tool": name, "ok": False, "error": f"internal tool error ({type(exc).__name__}: {exc})"[:300]}


def run_plan(twin: DigitalTwin, calls: Any) -> list[dict[str, Any]]:
    """Execute a ``<plan>`` list of calls in order; a non-list is one error result. Never raises."""
    if not isinstance(calls, list):
        return [{"tool": None, "ok": False,
                 "error": f'a plan must be a list of calls [{{"tool": ..., "args": {{...}}}}], got {type(calls).__name__}'}]
    results = [run_tool(twin, call) for call in calls[:MAX_PLAN_CALLS]]
    if len(calls) > MAX_PLAN_CALLS:
        results.append({"tool": None, "ok": False,
                        "error": f"plan has {len(calls)} calls; only the first {MAX_PLAN_CALLS} were run"})
    return results
