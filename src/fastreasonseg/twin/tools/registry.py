"""The DT tool registry (name -> argument schema, function, result summary) and the call dispatcher.

:func:`run_tool` / :func:`run_plan` validate LLM-written calls against :data:`TOOLS` and never raise.

Object references by name: wherever a tool takes ``id`` (one object) or ``ids`` (candidates),
the call may give an object name instead (``{"id": "bowl"}``, ``{"ids": "vases"}``). The name
is resolved with :func:`~.spatial.filter_label` over the whole twin (plural and synonym aware,
:mod:`fastreasonseg.twin.vocab`); an ``id`` name must match exactly one object, otherwise the
error lists the matching ids so the model can pick one. Departure from the paper (its tools
take ids): a 135M student copies a word from the request far more reliably than it looks up
the id that word has in the scene listing, and the results still report the resolved ids.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastreasonseg.twin.core import DigitalTwin
from fastreasonseg.twin.tools.common import MAX_IDS, MAX_PLAN_CALLS, MAX_STR, ArgSpec, ToolError, ToolSpec
from fastreasonseg.twin.tools.knowledge import knowledge
from fastreasonseg.twin.tools.spatial import (
    EXTREME_KEYS,
    attributes,
    count,
    depth_order,
    extreme,
    filter_label,
    nearest_to,
    relation,
)
from fastreasonseg.twin.tools.temporal import (
    EVENT_ORDERS,
    EVENTS,
    MOTION_DIRECTIONS,
    TRACK_SPANS,
    compare_position,
    event_order,
    motion,
    present_at,
    track_info,
)

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
        "by": ArgSpec("str", True, "what to compare", EXTREME_KEYS, video_choices=("speed",)),
        "order": ArgSpec("str", True, "max or min", ("max", "min")),
        "ids": ArgSpec("ids", False, "candidates (default: all objects in the frame)"), "frame": _FRAME}, extreme,
        "id, value, next [id, value]; x,y = center, min y = highest, min depth = nearest"),
    ToolSpec("filter_label", "ids whose label matches (plural/synonym aware)", {
        "label": ArgSpec("str", True, "object name, e.g. cups"), "frame": _LABEL_FRAME}, filter_label,
        "ids, labels"),
    ToolSpec("count", "how many objects match a label", {
        "label": ArgSpec("str", True, "object name"), "frame": _LABEL_FRAME}, count, "count, ids"),
    ToolSpec("knowledge", "objects ranked by how well they fit a use, need or property", {
        "about": ArgSpec("str", True, "what the object is for or like, e.g. cut bread"),
        "ids": ArgSpec("ids", False, "candidates (default: all objects)")}, knowledge,
        "ranked [[id, score]] best first"),
    ToolSpec("nearest_to", "other objects by distance to id", {
        "id": ArgSpec("id", True, "anchor object id"),
        "ids": ArgSpec("ids", False, "candidates (default: all others)"), "frame": _FRAME}, nearest_to,
        "nearest [[id, distance]] closest first"),
    ToolSpec("track_info", "when each id is visible", {
        "ids": _IDS, "only": ArgSpec("str", False, "keep the ids that come into view after the start (enters) "
                                     "or go out of view before the end (leaves)", TRACK_SPANS)}, track_info,
             "per id: first/last frame and t, n_frames", video_only=True),
    ToolSpec("motion", "how each id moves", {
        "ids": _IDS, "direction": ArgSpec("str", False, "keep the ids moving this way (moving: any way)",
                                          MOTION_DIRECTIONS)}, motion,
             "per id: moves, direction, displacement [dx, dy], depth_change, speed (grid/s)", video_only=True),
    ToolSpec("present_at", "ids visible at a frame or time", {
        "frame": ArgSpec("int", False, "frame index"), "time": ArgSpec("num", False, "seconds")}, present_at,
        "frame, t, ids (give frame or time)", video_only=True),
    ToolSpec("event_order", "ids ordered by when an event happens", {
        "ids": _IDS, "event": ArgSpec("str", True, "which event", EVENTS),
        "order": ArgSpec("str", False, "first: earliest first (default); last: latest first", EVENT_ORDERS)}, event_order,
        "order [{id, frame, t}], never", video_only=True),
    ToolSpec("compare_position", "who is ahead over time on an axis", {
        "a": ArgSpec("id", True, "object id"), "b": ArgSpec("id", True, "object id"),
        "axis": ArgSpec("str", True, "x, y or depth", ("x", "y", "depth"))}, compare_position,
        "start, end, flips [{frame, t}], ahead_start, ahead_end, overtakes", video_only=True),
)}


def tool_names(video: bool | None = None, exclude: tuple[str, ...] = ()) -> list[str]:
    """Tool names available for an image twin (``video=False``), a video twin (True) or any (None)."""
    return [name for name, spec in TOOLS.items() if (video is not False or not spec.video_only) and name not in exclude]


def tool_contracts_text(video: bool | None = None, exclude: tuple[str, ...] = ()) -> str:
    """One line per tool, ``name(args) -> returns``, for the reasoner's system prompt.

    ``video=False`` lists the image tools without the ``frame`` argument (an image has one
    frame); ``True``/``None`` list every tool. Optional arguments end in ``?``; enumerated
    values are given as ``by=area|depth|...`` (video-only values such as ``speed`` for videos
    only). Units are not repeated here: the serialised twin's header states them. Size,
    SmolLM2-135M tokenizer (estimate of :func:`fastreasonseg.twin.serialize.estimate_tokens`
    in brackets): 200 (234) tokens for images, 382 (440) for videos before generator v5's
    arguments, which bring the video estimate to 520; reproduce with ``serialize.token_report()``.
    """
    lines = ['Tools, called as <plan>[{"tool": name, "args": {...}}]</plan>; optional args end in ?:']
    for name in tool_names(video, exclude):
        spec = TOOLS[name]
        parts = []
        for arg, a in spec.args.items():
            if video is False and arg == "frame" and not spec.video_only:
                continue
            choices = a.allowed(video)
            text = f"{arg}={'|'.join(choices)}" if choices else arg
            parts.append(text + ("" if a.required else "?"))
        lines.append(f"{name}({', '.join(parts)}) -> {spec.returns}")
    if video is not False:
        lines.append("frame? default: first frame with all ids (filter_label/count: whole video).")
        lines.append("by=speed: moving ids over the clip; direction?/only? keep matching ids.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- dispatcher


def _resolve_name(twin: DigitalTwin, name: str, value: str, single: bool) -> int | list[int]:
    """The id(s) an object name in argument ``name`` refers to (module docstring), or raise ToolError."""
    if not value.strip():
        raise ToolError(f"argument '{name}' must be an object id or a non-empty object name")
    if len(value) > MAX_STR:
        raise ToolError(f"argument '{name}' is too long ({len(value)} characters)")
    ids = filter_label(twin, value)["ids"]
    if not ids:
        raise ToolError(f"argument '{name}': no object is called {value[:60]!r}; give ids or another name")
    if single and len(ids) > 1:
        shown = ", ".join(str(i) for i in ids[:12])
        raise ToolError(f"argument '{name}': {len(ids)} objects match {value[:60]!r} (ids {shown}); give one id")
    return ids[0] if single else ids


def _check_arg(name: str, spec: ArgSpec, value: Any, twin: DigitalTwin | None = None) -> Any:
    """The validated value, or raise ToolError saying what was expected.

    ``id``/``ids`` arguments may be object names when ``twin`` is given (module docstring).
    """
    if spec.type in ("id", "ids") and isinstance(value, str) and twin is not None:
        if value.strip().lstrip("[").rstrip("]").replace(",", " ").replace(" ", "").isdigit():
            example = "3" if spec.type == "id" else "[3, 8]"
            raise ToolError(f"argument '{name}' must be {'an object id' if spec.type == 'id' else 'a list of object ids'}"
                            f" written as a number, e.g. {example}, or an object name; got the string {value[:40]!r}")
        return _resolve_name(twin, name, value, single=spec.type == "id")

    def integer(v: Any, what: str) -> int:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
            raise ToolError(f"argument '{name}' must be {what}, got {json.dumps(v)[:60] if _jsonable(v) else type(v).__name__}")
        if abs(v) > 2**31:
            raise ToolError(f"argument '{name}' is out of range: {v!r}"[:120])
        return int(v)

    if spec.type == "id":
        value = integer(value, "an object id (integer) or an object name")
    elif spec.type == "int":
        value = integer(value, "an integer")
    elif spec.type == "ids":
        if not isinstance(value, list):
            raise ToolError(f"argument '{name}' must be a list of object ids, e.g. [3, 8], or an object name; "
                            f"got {type(value).__name__}")
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
            video = twin.is_video if twin is not None else None
            if value in spec.video_choices and video is False:
                raise ToolError(f"argument '{name}': {value!r} needs a video; this twin is an image")
            if value not in spec.allowed(video):
                raise ToolError(f"argument '{name}' must be one of {list(spec.allowed(video))}, got {value[:40]!r}")
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
        checked[key] = _check_arg(key, spec.args[key], value, twin)
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


def run_plan(twin: DigitalTwin, calls: Any, disabled: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Execute a ``<plan>`` list of calls in order; a non-list is one error result. Never raises.

    A call to a ``disabled`` tool (an ablation switched it off) is not run; its result is an error saying so.
    """
    if not isinstance(calls, list):
        return [{"tool": None, "ok": False,
                 "error": f'a plan must be a list of calls [{{"tool": ..., "args": {{...}}}}], got {type(calls).__name__}'}]

    def one(call: Any) -> dict[str, Any]:
        name = call.get("tool") if isinstance(call, dict) else None
        if isinstance(name, str) and name in disabled:
            return {"tool": name, "ok": False, "error": f"the tool '{name}' is switched off in this run"}
        return run_tool(twin, call)

    results = [one(call) for call in calls[:MAX_PLAN_CALLS]]
    if len(calls) > MAX_PLAN_CALLS:
        results.append({"tool": None, "ok": False,
                        "error": f"plan has {len(calls)} calls; only the first {MAX_PLAN_CALLS} were run"})
    return results
