"""Query programs: a small JSON language of steps over the DT tools, and its interpreter.

Every synthetic query carries a program; the ground-truth answer is what the program
returns on the noise-free twin, never an id typed by hand, and the programmatic teacher
writes its ``<plan>`` from the tool calls the interpreter made. A program is::

    {"steps": [{"id": "cups", "op": "labels", "labels": ["cup"]},
               {"id": "near", "op": "extreme", "in": "cups", "by": "depth", "order": "min"}],
     "answer": "near"}

Each step names earlier steps through ``in``/``ref``/``a``/``b`` and produces a list of
object ids. Ops (the tool each one calls in brackets):

- ``labels`` [filter_label, one call per label], ``all`` [none: every track id];
- ``extreme`` by area/depth/x/y/width/height, order max/min [extreme];
- ``depth_rank`` the n nearest or farthest [depth_order];
- ``relation`` candidates whose relation to the single ``ref`` object includes ``rel`` [relation];
- ``nearest`` the candidate closest to ``ref`` [nearest_to];
- ``attribute`` filter by ``size`` (small/medium/large) or ``region`` (top-left ... bottom-right) [attributes];
- ``moving`` filter by moves true/false and optional direction [motion with ``direction``]; ``fastest``
  (or slowest) of the ones that move ("the slowest dog" means the slowest that moves) [extreme by speed];
- ``event`` the first/last to be first_seen/last_seen/start/stop moving [event_order, ``order=last`` for the last];
- ``enters``/``leaves`` tracks that appear after the start / vanish before the end [track_info with ``only``];
- ``overtakes`` which of two ids overtakes the other [compare_position];
- ``approach`` two ids that end much closer than they started [relation at the first and last frame];
- set operations ``union``, ``intersect``, ``difference`` (no tool).

The interpreter runs tool steps through :func:`fastreasonseg.twin.tools.run_tool` (so the
answer follows the tools' own definitions of "left of", "moves", label matching...) and
records every call and result. Temporal ops call the tools with the criterion in the
call (generator v5), so their answer is what the last result lists first and a student
can copy it; a ``fastest`` step's ``moving_only`` is kept for old programs and no longer
changes anything (the tool ranks only the ids that move). It also checks *margins*: an answer that would flip under
a small perturbation (two cups at nearly the same depth, a walker that barely moved) is
flagged ``robust=False`` and the query generator discards it, because a noisy twin or a
student could not be expected to get it right.

Hand-written rather than a general interpreter: the language has no variables beyond
step ids, no loops and no expressions, so it is a plain dispatch table; nothing in a
program is ever evaluated as code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastreasonseg.twin.core import DigitalTwin
from fastreasonseg.twin.tools import EVENTS, EXTREME_KEYS, GRID, grid_center, r2, run_tool, track_motion

# Margins beyond the tools' own thresholds for an answer to count as robust.
DEPTH_GAP = 0.06
RATIO_GAP = 1.25
GRID_GAP = 40.0
DISTANCE_RATIO = 1.3
SPEED_RATIO = 1.3
MOVE_CLEAR = 60.0  # grid units: a "moving" track moved at least this far, a "still" one less than MOVE_CLEAR / 3

RELATIONS = ("left_of", "right_of", "above", "below", "in_front_of", "behind")
REGIONS = ("top-left", "top", "top-right", "left", "center", "right", "bottom-left", "bottom", "bottom-right")
SIZES = ("small", "medium", "large")
DIRECTIONS = ("left", "right", "up", "down", "toward camera", "away")

# op -> {argument: kind}; kinds: ref, str, strs, int, bool, or a tuple of allowed strings. "?" marks optional.
OP_ARGS: dict[str, dict[str, Any]] = {
    "labels": {"labels": "strs"},
    "all": {},
    "extreme": {"in": "ref?", "by": EXTREME_KEYS, "order": ("max", "min"), "frame": "int?"},
    "depth_rank": {"in": "ref", "take": ("nearest", "farthest"), "n": "int", "frame": "int?"},
    "relation": {"in": "ref", "ref": "ref", "rel": RELATIONS, "frame": "int?"},
    "nearest": {"in": "ref", "ref": "ref", "frame": "int?"},
    "attribute": {"in": "ref", "key": ("size", "region"), "value": "str", "frame": "int?"},
    "moving": {"in": "ref", "moves": "bool", "direction": "str?"},
    "fastest": {"in": "ref", "order": ("max", "min"), "moving_only": "bool?"},
    "event": {"in": "ref", "event": EVENTS, "which": ("first", "last")},
    "enters": {"in": "ref"},
    "leaves": {"in": "ref"},
    "overtakes": {"in": "ref", "axis": ("x", "y", "depth")},
    "approach": {"in": "ref"},
    "union": {"a": "ref", "b": "ref"},
    "intersect": {"a": "ref", "b": "ref"},
    "difference": {"a": "ref", "b": "ref"},
}
READING_OPS = frozenset({"labels", "all"})
SET_OPS = frozenset({"union", "intersect", "difference"})
VIDEO_OPS = frozenset({"moving", "fastest", "event", "enters", "leaves", "overtakes", "approach"})


class ProgramError(ValueError):
    """A program is malformed; the message names the step and argument."""


@dataclass(frozen=True)
class Step:
    id: str
    op: str
    args: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "op": self.op, **self.args}

    def refs(self) -> list[str]:
        return [self.args[k] for k, kind in OP_ARGS[self.op].items() if str(kind).startswith("ref") and k in self.args]


@dataclass(frozen=True)
class Program:
    """A validated program; build with :meth:`from_dict` (or the helpers in :mod:`.queries`)."""

    steps: tuple[Step, ...]
    answer: str

    @classmethod
    def from_dict(cls, data: Any) -> Program:
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list) or not data["steps"]:
            raise ProgramError('a program is {"steps": [...non-empty...], "answer": step id}')
        unknown = set(data) - {"steps", "answer"}
        if unknown:
            raise ProgramError(f"unknown program fields {sorted(unknown)}")
        steps: list[Step] = []
        seen: set[str] = set()
        for i, raw in enumerate(data["steps"]):
            where = f"steps[{i}]"
            if not isinstance(raw, dict):
                raise ProgramError(f"{where}: expected an object")
            sid, op = raw.get("id"), raw.get("op")
            if not isinstance(sid, str) or not sid:
                raise ProgramError(f"{where}.id: expected a non-empty string")
            if sid in seen:
                raise ProgramError(f"{where}.id: {sid!r} used twice")
            if op not in OP_ARGS:
                raise ProgramError(f"{where}.op: unknown op {op!r}; ops: {sorted(OP_ARGS)}")
            spec = OP_ARGS[op]
            args = {k: v for k, v in raw.items() if k not in ("id", "op")}
            extra = set(args) - set(spec)
            if extra:
                raise ProgramError(f"{where} ({op}): unknown arguments {sorted(extra)}; allowed: {sorted(spec)}")
            for name, kind in spec.items():
                optional = isinstance(kind, str) and kind.endswith("?")
                if name not in args:
                    if not optional:
                        raise ProgramError(f"{where} ({op}): missing argument {name!r}")
                    continue
                _check_arg(f"{where}.{name}", kind.rstrip("?") if isinstance(kind, str) else kind, args[name], seen)
            seen.add(sid)
            steps.append(Step(id=sid, op=op, args=args))
        answer = data.get("answer")
        if answer not in seen:
            raise ProgramError(f"answer: {answer!r} is not a step id ({sorted(seen)})")
        return cls(steps=tuple(steps), answer=answer)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [s.to_dict() for s in self.steps], "answer": self.answer}

    @property
    def needs_video(self) -> bool:
        return any(s.op in VIDEO_OPS for s in self.steps)


def _check_arg(where: str, kind: Any, value: Any, seen: set[str]) -> None:
    if isinstance(kind, tuple):
        if value not in kind:
            raise ProgramError(f"{where}: expected one of {list(kind)}, got {value!r}")
    elif kind == "ref":
        if value not in seen:
            raise ProgramError(f"{where}: {value!r} is not an earlier step id")
    elif kind == "str":
        if not isinstance(value, str) or not value:
            raise ProgramError(f"{where}: expected a non-empty string")
    elif kind == "strs":
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise ProgramError(f"{where}: expected a non-empty list of strings")
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProgramError(f"{where}: expected an integer, got {value!r}")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ProgramError(f"{where}: expected true or false, got {value!r}")


# --------------------------------------------------------------------------- execution


@dataclass
class StepTrace:
    """What one step did: its tool calls and results, its output ids and whether the output is clear-cut.

    ``round`` is the tool round its calls belong to (1 = can be called straight from the
    twin text; k = needs round k-1's results); reading and set steps have no calls.
    """

    step: Step
    calls: list[dict] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)
    output: list[int] = field(default_factory=list)
    round: int = 0
    margin_ok: bool = True
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Execution:
    """The result of running a program on a twin."""

    answer: list[int]
    steps: list[StepTrace]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def robust(self) -> bool:
        return self.ok and all(s.margin_ok for s in self.steps)

    def step(self, step_id: str) -> StepTrace:
        for trace in self.steps:
            if trace.step.id == step_id:
                return trace
        raise KeyError(step_id)

    def rounds(self) -> list[list[tuple[dict, dict]]]:
        """Tool calls grouped by round (reading steps excluded), each as (call, result)."""
        by_round: dict[int, list[tuple[dict, dict]]] = {}
        for trace in self.steps:
            if trace.step.op in READING_OPS or not trace.calls:
                continue
            by_round.setdefault(trace.round, []).extend(zip(trace.calls, trace.results, strict=True))
        return [by_round[k] for k in sorted(by_round)]


class _Failed(Exception):
    pass


def execute(program: Program | dict, twin: DigitalTwin) -> Execution:
    """Run ``program`` on ``twin``; never raises for a valid program (errors land in ``Execution.error``)."""
    if isinstance(program, dict):
        program = Program.from_dict(program)
    outputs: dict[str, list[int]] = {}
    output_round: dict[str, int] = {}
    traces: list[StepTrace] = []
    for step in program.steps:
        trace = StepTrace(step=step)
        inputs = step.refs()
        ready = max((output_round[r] for r in inputs), default=0)
        try:
            if step.op in VIDEO_OPS and not twin.is_video:
                raise _Failed(f"step {step.id!r}: op {step.op!r} needs a video twin")
            trace.output = sorted(set(_OPS[step.op](twin, step, outputs, trace)))
        except _Failed as exc:
            traces.append(trace)
            return Execution(answer=[], steps=traces, error=str(exc))
        if step.op in READING_OPS or step.op in SET_OPS or not trace.calls:
            trace.round = 0
            output_round[step.id] = ready
        else:
            trace.round = ready + 1
            output_round[step.id] = trace.round
        outputs[step.id] = trace.output
        traces.append(trace)
    return Execution(answer=outputs[program.answer], steps=traces)


def _call(twin: DigitalTwin, trace: StepTrace, tool: str, **args: Any) -> dict:
    call = {"tool": tool, "args": {k: v for k, v in args.items() if v is not None}}
    result = run_tool(twin, call)
    trace.calls.append(call)
    trace.results.append(result)
    if not result["ok"]:
        raise _Failed(f"step {trace.step.id!r}: {tool} failed: {result['error']}")
    return result["result"]


def _ids(step: Step, outputs: dict[str, list[int]], key: str = "in") -> list[int]:
    return list(outputs[step.args[key]])


def _single(step: Step, outputs: dict[str, list[int]], key: str) -> int:
    ids = outputs[step.args[key]]
    if len(ids) != 1:
        raise _Failed(f"step {step.id!r}: {key} must be exactly one object, got {ids}")
    return ids[0]


def _op_labels(twin: DigitalTwin, step: Step, outputs: dict, trace: StepTrace) -> list[int]:
    found: list[int] = []
    for label in step.args["labels"]:
        found.extend(_call(twin, trace, "filter_label", label=label)["ids"])
    return found


def _op_all(twin: DigitalTwin, step: Step, outputs: dict, trace: StepTrace) -> list[int]:
    return twin.track_ids


def _op_extreme(twin: DigitalTwin, step: Step, outputs: dict, trace: StepTrace) -> list[int]:
    ids = _ids(step, outputs) if "in" in step.args else None
    if ids is not None and not ids:
        raise _Failed(f"step {step.id!r}: no candidates")
    by, order = step.args["by"], step.args["order"]
    result = _call(twin, trace, "extreme", by=by, order=order, ids=ids, frame=step.args.get("frame"))
    if result["next"] is not None:
        best, runner_up = float(result["value"]), float(result["next"][1])
        if by == "depth":
            trace.margin_ok = abs(best - runner_up) >= DEPTH_GAP
        elif by in ("x", "y"):
            trace.margin_ok = abs(best - runner_up) >= GRID_GAP
        else:
            low, high = sorted((abs(best), abs(runner_up)))
            trace.margin_ok = low == 0 or high / low >= RATIO_GAP
    trace.info = {"value": result["value"], "next": result["next"]}
    return [result["id"]]


def _op_depth_rank(twin: DigitalTwin, step: Step, outputs: dict, trace: StepTrace) -> list[int]:
    ids = _ids(step, outputs)
    n = step.args["n"]
    if not 1 <= n < len(ids):
        raise _Failed(f"step {step.id!r}: n={n} needs more than n candidates, got {len(ids)}")
    order = _call(twin, trace, "depth_order", ids=ids, frame=step.args.get("frame"))["near_to_far"]
    if step.args["take"] == "farthest":
        order = order[::-1]
    trace.margin_ok = abs(order[n - 1][1] - order[n][1]) >= DEPTH_GAP
    return [i for i, _ in order[:n]]


def _op_relation(twin: DigitalTwin, step: Step, outputs: dict, trace: StepTrace) -> list[int]:
    ref = _single(step, outputs, "ref")
    rel = step.args["rel"]
    kept = []
    for cand in _ids(step, outputs):
        if cand == ref:
            continue
        result = _call(twin, trace, "relation", a=cand, b=ref, frame=step.args.get("frame"))
        if rel in result["relations"]:
            kept.append(cand)
        frame = twin.frame(result["frame"]) if twin.is_video else twin.frames[0]
        trace.margin_ok &= _relation_clear(twin, frame, cand, ref, rel)
    return kept


def _relation_clear(twin: DigitalTwin, frame: Any, a: int, b: int, rel: str) -> bool:
    """Whether ``a rel b`` is clearly true or clearly false (not within the tools' margin band)."""
    oa, ob = frame.object(a), frame.object(b)
    if rel in ("in_front_of", "behind"):
        if oa.depth is None or ob.depth is None:
            return False
        diff = oa.depth.mean - ob.depth.mean
        return abs(diff) >= DEPTH_GAP + 0.02 or abs(diff) <= 0.01
    (ax, ay), (bx, by) = grid_center(twin, oa), grid_center(twin, ob)
    diff = (ax - bx) if rel in ("left_of", "right_of") else (ay - by)
    return abs(diff) >= GRID_GAP or abs(diff) <= 5.0


def _op_nearest(twin: DigitalTwin, step: Step, outputs: dict, trace: StepTrace) -> list[int]:
    ref = _single(step, outputs, "ref")
    cands = [i for i in _ids(step, outputs) if i != ref]
    if not cands:
        raise _Failed(f"step {step.id!r}: no candidates other than the reference")
    nearest = _call(twin, trace, "nearest_to", id=ref, ids=cands, frame=step.args.get("frame"))["nearest"]
    if len(nearest) > 1:
        first, second = nearest[0][1], nearest[1][1]
        trace.margin_ok = second >= first * DISTANCE_RATIO and second - first >= 0.03
    return [nearest[0][0]]


def _op_attribute(twin: DigitalTwin, step: Step, outputs: dict, trace: StepTrace) -> list[int]:
    ids = _ids(step, outputs)
    if not ids:
        return []
    key, value = step.args["key"], step.args["value"]
    allowed = SIZES if key == "size" else REGIONS
    if value not in allowed:
        raise _Failed(f"step {step.id!r}: {key} must be one of {list(allowed)}, got {value!r}")
    result = _call(twin, trace, "attributes", ids=ids, frame=step.args.get("frame"))
    kept = [o["id"] for o in result["objects"] if o[key] == value]
    if key == "region":
        # A centre within GRID_GAP of a ninth's border could fall either side under noise.
        for o in result["objects"]:
            cx, cy = o["center"]
            near = [abs(cx - b) < GRID_GAP / 2 or abs(cy - b) < GRID_GAP / 2 for b in (GRID / 3, 2 * GRID / 3)]
            trace.margin_ok &= not any(near)
    return kept


def _max_excursion(twin: DigitalTwin, object_id: int) -> float:
    track = twin.track(object_id)
    x0, y0 = grid_center(twin, track[0][1])
    return max(((grid_center(twin, o)[0] - x0) ** 2 + (grid_center(twin, o)[1] - y0) ** 2) ** 0.5 for _, o in track)


def _moves_clearly(twin: DigitalTwin, ids: list[int]) -> bool:
    """Whether every id clearly moves or clearly stays still (read off the twin, not a tool result)."""
    for object_id in ids:
        excursion = _max_excursion(twin, object_id)
        depth_change = track_motion(twin, object_id).depth_change
        depth_moved = depth_change is not None and abs(r2(depth_change)) >= 0.15  # as motion reports it
        if not (excursion >= MOVE_CLEAR or depth_moved or excursion <= MOVE_CLEAR / 3):
            return False
    return True


def _op_moving(twin: DigitalTwin, step: Step, outputs: dict, trace: StepTrace) -> list[int]:
    wanted, direction = step.args["moves"], step.args.get("direction")
    if direction is not None and direction not in DIRECTIONS:
        raise _Failed(f"step {step.id!r}: direction must be one of {list(DIRECTIONS)}")
    if direction is not None and not wanted:
        raise _Failed(f"step {step.id!r}: a direction needs moves=true")
    ids = _ids(step, outputs)
    if not ids:
        raise _Failed(f"step {step.id!r}: no candidates")
    kept = _call(twin, trace, "motion", ids=ids, direction=direction or ("moving" if wanted else "static"))["motion"]
    trace.margin_ok = _moves_clearly(twin, ids)
    return [m["id"] for m in kept]


def _op_fastest(twin: DigitalTwin, step: Step, outputs: dict, trace: StepTrace) -> list[int]:
    ids = _ids(step, outputs)
    if not ids:
        raise _Failed(f"step {step.id!r}: no candidates")
    result = _call(twin, trace, "extreme", by="speed", order=step.args["order"], ids=ids)
    # The tool ranks the ids that move: one near the threshold could enter or leave the ranking.
    trace.margin_ok = _moves_clearly(twin, ids)
    if result["next"] is not None:
        low, high = sorted((float(result["value"]), float(result["next"][1])))
        trace.margin_ok &= high >= max(1e-9, low) * SPEED_RATIO and high - low >= 20
    trace.info = {"value": result["value"], "next": result["next"]}
    return [result["id"]]


def _op_event(twin: DigitalTwin, step: Step, outputs: dict, trace: StepTrace) -> list[int]:
    ids = _ids(step, outputs)
    if not ids:
        raise _Failed(f"step {step.id!r}: no candidates")
    last = step.args["which"] == "last"
    result = _call(twin, trace, "event_order", ids=ids, event=step.args["event"], order="last" if last else None)
    order = result["order"]
    if not order:
        return []
    # Ties (two first seen in the same frame) or one of them never having the event make it unclear.
    trace.margin_ok = len(order) == 1 or order[0]["frame"] != order[1]["frame"]
    trace.margin_ok &= not result.get("never") or step.args["event"] in ("first_seen", "last_seen")
    return [order[0]["id"]]


def _op_enters(twin: DigitalTwin, step: Step, outputs: dict, trace: StepTrace) -> list[int]:
    ids = _ids(step, outputs)
    if not ids:
        return []
    return [t["id"] for t in _call(twin, trace, "track_info", ids=ids, only=step.op)["tracks"]]


_op_leaves = _op_enters  # the op's name is the filter


def _op_overtakes(twin: DigitalTwin, step: Step, outputs: dict, trace: StepTrace) -> list[int]:
    ids = _ids(step, outputs)
    if len(ids) != 2:
        raise _Failed(f"step {step.id!r}: overtakes compares exactly two objects, got {ids}")
    result = _call(twin, trace, "compare_position", a=ids[0], b=ids[1], axis=step.args["axis"])
    trace.info = {"result": result}
    return [result["overtakes"]] if result["overtakes"] is not None else []


def _op_approach(twin: DigitalTwin, step: Step, outputs: dict, trace: StepTrace) -> list[int]:
    ids = _ids(step, outputs)
    if len(ids) != 2:
        raise _Failed(f"step {step.id!r}: approach compares exactly two objects, got {ids}")
    together = [f.index for f in twin.frames if f.object(ids[0]) is not None and f.object(ids[1]) is not None]
    if len(together) < 2:
        return []
    start = _call(twin, trace, "relation", a=ids[0], b=ids[1], frame=together[0])["distance"]
    end = _call(twin, trace, "relation", a=ids[0], b=ids[1], frame=together[-1])["distance"]
    trace.info = {"start": start, "end": end}
    closing = end < 0.6 * start
    trace.margin_ok = end < 0.5 * start or end > 0.8 * start
    return ids if closing else []


def _op_union(twin: DigitalTwin, step: Step, outputs: dict, trace: StepTrace) -> list[int]:
    return _ids(step, outputs, "a") + _ids(step, outputs, "b")


def _op_intersect(twin: DigitalTwin, step: Step, outputs: dict, trace: StepTrace) -> list[int]:
    b = set(_ids(step, outputs, "b"))
    return [i for i in _ids(step, outputs, "a") if i in b]


def _op_difference(twin: DigitalTwin, step: Step, outputs: dict, trace: StepTrace) -> list[int]:
    b = set(_ids(step, outputs, "b"))
    return [i for i in _ids(step, outputs, "a") if i not in b]


_OPS: dict[str, Callable[[DigitalTwin, Step, dict, StepTrace], list[int]]] = {
    "labels": _op_labels, "all": _op_all, "extreme": _op_extreme, "depth_rank": _op_depth_rank,
    "relation": _op_relation, "nearest": _op_nearest, "attribute": _op_attribute, "moving": _op_moving,
    "fastest": _op_fastest, "event": _op_event, "enters": _op_enters, "leaves": _op_leaves,
    "overtakes": _op_overtakes, "approach": _op_approach, "union": _op_union, "intersect": _op_intersect,
    "difference": _op_difference,
}
