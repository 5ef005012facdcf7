"""Shared parts of the DT tools: thresholds, the tool/argument types, the 0-1000 grid and frame lookups.

The conventions are described in :mod:`fastreasonseg.twin.tools`; everything here is re-exported there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from fastreasonseg.twin.core import DigitalTwin, Frame, TwinObject

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
    """One tool argument: ``type`` in {"id", "ids", "int", "num", "str"}; ``choices`` for enums.

    ``video_choices`` are further choices that only a video twin accepts (``extreme`` by
    ``speed``); image contracts and grammars do not offer them.
    """

    type: str
    required: bool
    description: str
    choices: tuple[str, ...] = ()
    video_choices: tuple[str, ...] = ()

    def allowed(self, video: bool | None) -> tuple[str, ...]:
        """The choices for an image twin (``video=False``), a video twin or any (``None``)."""
        return self.choices + (self.video_choices if video is not False else ())


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
