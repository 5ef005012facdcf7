"""Temporal builders (videos only): the answer depends on how the tracks move over the clip.

L1 moving or still, entering or leaving; L2 a direction, the first/last event, the fastest
or slowest; L3 one object overtaking another, two approaching each other; L4 a concept
plus motion plus depth or size, or the fastest of a concept.
"""

from __future__ import annotations

from fastreasonseg.data import phrasing as P
from fastreasonseg.data.programs import execute
from fastreasonseg.data.queries.common import (
    Context,
    Draft,
    by_slots,
    candidate_sets,
    concept_options,
    extreme_choice,
    frame_args,
    ids_for,
    labels_step,
)


def _b_moving(ctx: Context) -> Draft | None:
    sets = candidate_sets(ctx, 2, 3, groups=("person", "animal", "vehicle", "sports"), movers_only=True)
    if not sets:
        return None
    cand = ctx.choice(sets)
    moves = bool(ctx.rng.random() < 0.65)
    verbs, adjectives = P.MOVING_WORDS[moves]
    slots = {"label": cand["noun"], "labels": cand["plural"], "targets": cand["cats"], "moves": moves, "moving": ctx.pick(verbs),
             "moving_adj": ctx.pick(adjectives)}
    program = {"steps": [labels_step("c", cand["cats"]), {"id": "t", "op": "moving", "in": "c", "moves": moves}],
               "answer": "t"}
    return Draft("moving", "moving", slots, program)


def _b_enters(ctx: Context) -> Draft | None:
    sets = candidate_sets(ctx, 2, 3, groups=("person", "animal", "vehicle", "sports"), movers_only=True)
    if not sets:
        return None
    cand = ctx.choice(sets)
    kind = ctx.choice(["enters", "leaves"])
    verbs, ings = P.ENTER_WORDS[kind]
    slots = {"label": cand["noun"], "labels": cand["plural"], "targets": cand["cats"], "kind": kind, "enters": ctx.pick(verbs),
             "enters_ing": ctx.pick(ings)}
    program = {"steps": [labels_step("c", cand["cats"]), {"id": "t", "op": kind, "in": "c"}], "answer": "t"}
    return Draft("enters", "enters", slots, program)


def _b_direction(ctx: Context) -> Draft | None:
    sets = candidate_sets(ctx, 2, 3, groups=("person", "animal", "vehicle", "sports"), movers_only=True)
    if not sets:
        return None
    cand = ctx.choice(sets)
    direction = ctx.choice(list(P.DIRECTION_WORDS))
    slots = {"label": cand["noun"], "labels": cand["plural"], "targets": cand["cats"], "direction": direction,
             "dir_ing": ctx.pick(P.DIRECTION_WORDS[direction])}
    program = {"steps": [labels_step("c", cand["cats"]),
                         {"id": "t", "op": "moving", "in": "c", "moves": True, "direction": direction}], "answer": "t"}
    return Draft("direction", "direction", slots, program)


def _b_event(ctx: Context) -> Draft | None:
    sets = candidate_sets(ctx, 2, 3, groups=("person", "animal", "vehicle", "sports"), movers_only=True)
    if not sets:
        return None
    cand = ctx.choice(sets)
    event, which = ctx.choice(list(P.EVENT_WORDS))
    verbs, ings = P.EVENT_WORDS[(event, which)]
    slots = {"label": cand["noun"], "labels": cand["plural"], "targets": cand["cats"], "event": event, "which": which,
             "event_phrase": ctx.pick(verbs), "event_ing": ctx.pick(ings)}
    program = {"steps": [labels_step("c", cand["cats"]), {"id": "t", "op": "event", "in": "c", "event": event,
                                                       "which": which}], "answer": "t"}
    return Draft("event", "event", slots, program)


def _b_fastest(ctx: Context) -> Draft | None:
    sets = candidate_sets(ctx, 2, 3, groups=("person", "animal", "vehicle", "sports"), movers_only=True)
    if not sets:
        return None
    cand = ctx.choice(sets)
    order = ctx.choice(["max", "min"])
    adjectives, adverbs = P.SPEED_WORDS[order]
    slots = {"label": cand["noun"], "labels": cand["plural"], "targets": cand["cats"], "order": order,
             "speed_adj": ctx.pick(adjectives),
             "speed_adv": ctx.pick(adverbs)}
    # "the slowest dog" means the slowest of the dogs that move, not one standing still.
    steps = [labels_step("c", cand["cats"]), {"id": "t", "op": "fastest", "in": "c", "order": order,
                                                 "moving_only": order == "min"}]
    return Draft("fastest", "fastest", slots, {"steps": steps, "answer": "t"})


def _pair_labels(ctx: Context, motion: str) -> tuple[int, int, str, str] | None:
    """A scripted pair whose labels pick out exactly those two tracks."""
    objs = ctx.scene.objects
    for a in objs.values():
        if a.motion != motion or a.partner_id is None or a.partner_id not in objs or a.id > a.partner_id:
            continue
        b = objs[a.partner_id]
        la, lb = ctx.labels.get(a.id), ctx.labels.get(b.id)
        if la is None or lb is None:
            continue
        if la == lb and len(ctx.by_label[la]) == 2:
            return a.id, b.id, la, lb
        if la != lb and len(ctx.by_label[la]) == 1 and len(ctx.by_label[lb]) == 1:
            return a.id, b.id, la, lb
    return None


def _b_overtake(ctx: Context) -> Draft | None:
    pair = _pair_labels(ctx, "overtake")
    if pair is None:
        return None
    _a, _b, la, lb = pair
    program = {"steps": [labels_step("p", [la, lb]), {"id": "o", "op": "overtakes", "in": "p", "axis": "x"}],
               "answer": "o"}
    # Which one overtakes is the program's answer; the wording must name the right roles, so the
    # program is run here first.
    execution = execute(program, ctx.scene.twin)
    if not execution.ok or len(execution.answer) != 1:
        return None
    winner = execution.answer[0]
    loser = _b if winner == _a else _a
    a_label, b_label = ctx.labels[winner], ctx.labels[loser]
    same = a_label == b_label
    slots = {"a": a_label, "b": ("other " + b_label) if same else b_label, "a_label": a_label, "b_label": b_label}
    if ctx.rng.random() < 0.5:
        return Draft("overtake", "overtake", {**slots, "role": "overtaker"}, program)
    program = {"steps": [*program["steps"], {"id": "t", "op": "difference", "a": "p", "b": "o"}], "answer": "t"}
    slots = {**slots, "a": ("other " + a_label) if same else a_label, "b": b_label}
    return Draft("overtake", "overtaken", {**slots, "role": "overtaken"}, program)


def _b_approach(ctx: Context) -> Draft | None:
    pair = _pair_labels(ctx, "meet")
    if pair is None:
        return None
    _a, _b, la, lb = pair
    slots = {"a": la, "b": ("other " + lb) if la == lb else lb, "a_label": la, "b_label": lb}
    program = {"steps": [labels_step("p", [la, lb]), {"id": "t", "op": "approach", "in": "p"}], "answer": "t"}
    return Draft("approach", "approach", slots, program)


def _b_concept_motion(ctx: Context) -> Draft | None:
    options = [c for c in concept_options(ctx, min_objects=2)
               if c["kind"] == "group" and c["key"] in ("person", "animal", "vehicle", "sports")
               and len(ids_for(ctx, c["cats"])) <= 3]
    if not options:
        return None
    concept = ctx.choice(options)
    slots = {"concept": concept["singular"], "concepts": concept["plural"], "concept_kind": concept["kind"],
             "concept_key": concept["key"], "targets": sorted(concept["cats"])}
    if ctx.rng.random() < 0.5:
        order = ctx.choice(["max", "min"])
        adjectives, adverbs = P.SPEED_WORDS[order]
        slots.update({"order": order, "speed_adj": ctx.pick(adjectives), "speed_adv": ctx.pick(adverbs)})
        program = {"steps": [labels_step("c", concept["cats"]),
                             {"id": "t", "op": "fastest", "in": "c", "order": order, "moving_only": order == "min"}],
                   "answer": "t"}
        return Draft("concept_fastest", "concept_fastest", slots, program)
    by, order = extreme_choice(ctx)
    slots.update({"by": by, "order": order, **by_slots(ctx, by, order)})
    program = {"steps": [labels_step("c", concept["cats"]), {"id": "m", "op": "moving", "in": "c", "moves": True},
                         {"id": "t", "op": "extreme", "in": "m", "by": by, "order": order, **frame_args(ctx)}],
               "answer": "t"}
    return Draft("concept_motion_extreme", "concept_motion_extreme", slots, program)


TEMPORAL_BUILDERS: dict[int, tuple] = {
    1: (_b_moving, _b_enters),
    2: (_b_direction, _b_event, _b_fastest),
    3: (_b_overtake, _b_approach),
    4: (_b_concept_motion,),
}
