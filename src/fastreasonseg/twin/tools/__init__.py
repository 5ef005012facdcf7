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
this project's. ``compare_position`` (overtaking-type queries) is an addition, and so are the
arguments that put a temporal answer first in the result (``extreme`` by ``speed``,
``motion``'s ``direction``, ``track_info``'s ``only``, ``event_order``'s ``order``;
:mod:`~.temporal`).

Modules (everything is importable from this package): :mod:`~.common` (thresholds, the
grid, :class:`ToolError`, frame resolution), :mod:`~.spatial`, :mod:`~.temporal` (the tool
functions) and :mod:`~.registry` (:data:`TOOLS`, :func:`run_tool`, :func:`run_plan`, the
prompt's tool contracts).
"""

from fastreasonseg.twin.tools.common import (
    CONTAIN_FRACTION,
    DEPTH_MARGIN,
    DEPTH_MOVE_THRESHOLD,
    GRID,
    MAX_IDS,
    MAX_PLAN_CALLS,
    MAX_STR,
    MOVE_THRESHOLD,
    POSITION_MARGIN,
    SIZE_LARGE,
    SIZE_SMALL,
    ArgSpec,
    ToolError,
    ToolSpec,
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
from fastreasonseg.twin.tools.registry import (
    TOOLS,
    run_plan,
    run_tool,
    tool_contracts_text,
    tool_names,
)
from fastreasonseg.twin.tools.spatial import (
    EXTREME_KEYS,
    attributes,
    count,
    depth_order,
    extreme,
    filter_label,
    nearest_to,
    relation,
    spatial_relations,
)
from fastreasonseg.twin.tools.temporal import (
    EVENT_ORDERS,
    EVENTS,
    MOTION_DIRECTIONS,
    TRACK_SPANS,
    TrackMotion,
    compare_position,
    event_order,
    motion,
    present_at,
    speed_extreme,
    track_info,
    track_motion,
)

__all__ = [
    "CONTAIN_FRACTION",
    "DEPTH_MARGIN",
    "DEPTH_MOVE_THRESHOLD",
    "EVENTS",
    "EVENT_ORDERS",
    "EXTREME_KEYS",
    "GRID",
    "MAX_IDS",
    "MAX_PLAN_CALLS",
    "MAX_STR",
    "MOTION_DIRECTIONS",
    "MOVE_THRESHOLD",
    "POSITION_MARGIN",
    "SIZE_LARGE",
    "SIZE_SMALL",
    "TOOLS",
    "TRACK_SPANS",
    "ArgSpec",
    "ToolError",
    "ToolSpec",
    "TrackMotion",
    "area_pct",
    "attributes",
    "compare_position",
    "count",
    "depth_order",
    "event_order",
    "extreme",
    "filter_label",
    "grid_box",
    "grid_center",
    "gx",
    "gy",
    "motion",
    "nearest_to",
    "normalized_distance",
    "present_at",
    "r2",
    "region_name",
    "relation",
    "resolve_frame",
    "run_plan",
    "run_tool",
    "sig",
    "spatial_relations",
    "speed_extreme",
    "tool_contracts_text",
    "tool_names",
    "track_info",
    "track_label",
    "track_motion",
]
