"""Temporal DT tools (videos only): track spans, motion, presence at a time, event order, overtaking.

:func:`track_motion` is also the motion summary the serialised twin shows.

Filters and orders that put the answer first (generator v5): ``motion`` takes an optional
``direction`` (one of its direction words, ``moving`` = any, ``static``) and keeps only the
matching entries; ``track_info`` an optional ``only`` (``enters``: first seen after the first
frame, ``leaves``: last seen before the last frame); ``event_order`` an optional ``order``
(``last``: latest first); and ``extreme`` ranks by ``speed`` on videos (:func:`speed_extreme`).
A 135M student copies the ids a result lists first; it cannot compare the numbers of a list
or filter it, so the request's criterion goes into the call and the answer is what the result
lists. Without the new arguments every call returns exactly what it returned before.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from fastreasonseg.twin.core import DigitalTwin, Frame
from fastreasonseg.twin.tools.common import (
    DEPTH_MARGIN,
    DEPTH_MOVE_THRESHOLD,
    GRID,
    MOVE_THRESHOLD,
    POSITION_MARGIN,
    ToolError,
    _check_ids,
    _frame_span,
    _stored_frame,
    grid_center,
    r2,
    sig,
    track_label,
)

# --------------------------------------------------------------------------- temporal tools


TRACK_SPANS = ("enters", "leaves")


def track_info(twin: DigitalTwin, ids: list[int], only: str | None = None) -> dict[str, Any]:
    """When each id is visible; ``only="enters"``/``"leaves"`` keeps the tracks that start after the
    video's first frame / end before its last frame (the ones that come into or go out of view)."""
    _check_ids(twin, ids)
    first_index, last_index = twin.frames[0].index, twin.frames[-1].index
    tracks = []
    for object_id in ids:
        frames = [f for f in twin.frames if f.object(object_id) is not None]
        if (only == "enters" and frames[0].index == first_index) or (only == "leaves" and frames[-1].index == last_index):
            continue
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


MOTION_DIRECTIONS = ("moving", "static", "right", "left", "up", "down", "away", "toward camera")


def _speed(m: TrackMotion) -> float:
    """Speed along the path in grid units per second (0 for a track seen in one frame)."""
    return m.path_length / m.duration if m.duration > 0 else 0.0


def motion(twin: DigitalTwin, ids: list[int], direction: str | None = None) -> dict[str, Any]:
    """How each id moves; ``direction`` keeps only the ids moving that way (``moving``: any way, ``static``: still)."""
    _check_ids(twin, ids)
    out = []
    for object_id in ids:
        m = track_motion(twin, object_id)
        if direction is not None and not (m.direction == direction or (direction == "moving" and m.moves)):
            continue
        out.append({"id": object_id, "moves": m.moves, "direction": m.direction,
                    "displacement": [round(m.displacement[0]), round(m.displacement[1])],
                    "depth_change": r2(m.depth_change) if m.depth_change is not None else None,
                    "speed": sig(_speed(m))})
    return {"motion": out}


def speed_extreme(twin: DigitalTwin, order: str, ids: list[int] | None = None) -> dict[str, Any]:
    """``extreme`` by ``speed``: the fastest (``max``) or slowest (``min``) of the ids that move.

    Speed is ``motion``'s path speed. Only tracks that move are ranked: a still track's path
    speed is detection jitter, and "the slowest dog" means the slowest of the dogs that move,
    not one lying down. The still ones are listed under ``still``; none moving is an error.
    """
    candidates = twin.track_ids if ids is None else ids
    _check_ids(twin, candidates)
    moving, still = [], []
    for object_id in candidates:
        m = track_motion(twin, object_id)
        if m.moves:
            moving.append((_speed(m), object_id))
        else:
            still.append(object_id)
    if not moving:
        raise ToolError(f"none of ids {candidates[:40]} moves, so none has a speed to rank; motion shows how each moves")
    sign = -1.0 if order == "max" else 1.0
    ranked = sorted(moving, key=lambda vi: (sign * vi[0], vi[1]))
    result: dict[str, Any] = {"by": "speed", "order": order, "id": ranked[0][1], "value": sig(ranked[0][0]),
                              "next": [ranked[1][1], sig(ranked[1][0])] if len(ranked) > 1 else None}
    if still:
        result["still"] = still
    return result


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


EVENT_ORDERS = ("first", "last")


def event_order(twin: DigitalTwin, ids: list[int], event: str, order: str | None = None) -> dict[str, Any]:
    """Ids by when ``event`` happens, earliest first; ``order="last"`` lists the latest first."""
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
                              "order": [{"id": i, "frame": index, "t": sig(t)}
                                        for t, index, i in sorted(when, reverse=order == "last")]}
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
