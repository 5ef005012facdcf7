"""Spatial builders: the answer is a measurement on the twin (size, depth, position, relation to another object).

L1 a global extreme; L2 a label plus an extreme, a region or a depth rank; L3 a relation to
or the nearest to a reference object; L4 a concept plus a relation, or a relation plus an
extreme. In videos the measurements are taken on the first frame.
"""

from __future__ import annotations

from fastreasonseg.data import phrasing as P
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
    multi_labels,
    plural_of,
    rel_choice,
    unique_refs,
)


def _b_global_extreme(ctx: Context) -> Draft | None:
    by, order = ctx.choice([("depth", "min"), ("depth", "max"), ("area", "max"), ("area", "min"), ("x", "min"),
                            ("x", "max"), ("y", "min"), ("y", "max")])
    slots = {"by": by, "order": order, **by_slots(ctx, by, order)}
    program = {"steps": [{"id": "t", "op": "extreme", "by": by, "order": order, **frame_args(ctx)}], "answer": "t"}
    return Draft("global_extreme", "global_extreme", slots, program)


def _b_label_extreme(ctx: Context) -> Draft | None:
    sets = candidate_sets(ctx, 2, groups=("person", "animal", "vehicle"))
    if not sets:
        return None
    cand = ctx.choice(sets)
    by, order = ctx.choice([("depth", "min"), ("depth", "max"), ("area", "max"), ("area", "min"), ("x", "min"),
                            ("x", "max")])
    slots = {"label": cand["noun"], "labels": cand["plural"], "targets": cand["cats"], "by": by, "order": order,
             **by_slots(ctx, by, order)}
    template = "label_extreme"
    if len(ids_for(ctx, cand["cats"])) == 2 and ctx.rng.random() < 0.5:
        template = "label_compare"
        slots["cmp"] = ctx.pick(P.COMPARATIVES[(by, order)])
    program = {"steps": [labels_step("c", cand["cats"]),
                         {"id": "t", "op": "extreme", "in": "c", "by": by, "order": order, **frame_args(ctx)}],
               "answer": "t"}
    return Draft("label_extreme", template, slots, program)


def _b_label_region(ctx: Context) -> Draft | None:
    from fastreasonseg.twin.tools import grid_center, region_name

    labels = multi_labels(ctx, 2, 4)
    if not labels:
        return None
    label = ctx.choice(labels)
    frame = ctx.scene.twin.frames[0]
    regions = [region_name(*grid_center(ctx.scene.twin, o)) for o in frame.objects if o.label == label]
    unique = [r for r in regions if regions.count(r) == 1]
    if not unique:
        return None
    region = ctx.choice(unique)
    slots = {"label": label, "labels": plural_of(ctx, label), "region_key": region,
             "region": ctx.pick(P.REGION_PHRASES[region])}
    program = {"steps": [labels_step("c", [label]),
                         {"id": "t", "op": "attribute", "in": "c", "key": "region", "value": region,
                          **frame_args(ctx)}], "answer": "t"}
    return Draft("label_region", "label_region", slots, program)


def _b_depth_rank(ctx: Context) -> Draft | None:
    labels = multi_labels(ctx, 3, 5)
    if not labels:
        return None
    label = ctx.choice(labels)
    n = 2 if len(ctx.by_label[label]) <= 3 or ctx.rng.random() < 0.6 else 3
    take = ctx.choice(["nearest", "farthest"])
    order = "min" if take == "nearest" else "max"
    slots = {"label": label, "labels": plural_of(ctx, label), "n": P.NUMBER_WORDS[n], "n_value": n, "take": take,
             **by_slots(ctx, "depth", order, locative_only=True)}
    program = {"steps": [labels_step("c", [label]),
                         {"id": "t", "op": "depth_rank", "in": "c", "take": take, "n": n, **frame_args(ctx)}],
               "answer": "t"}
    return Draft("depth_rank", "depth_rank", slots, program)


def _b_relation(ctx: Context) -> Draft | None:
    sets = candidate_sets(ctx, 2, 3)
    if not sets:
        return None
    cand = ctx.choice(sets)
    refs = unique_refs(ctx, set(cand["cats"]))
    if not refs:
        return None
    ref = ctx.choice(refs)
    rel = rel_choice(ctx)
    slots = {"label": cand["noun"], "labels": cand["plural"], "targets": cand["cats"], "ref": ref, "rel_key": rel,
             "rel": ctx.pick(P.REL_PHRASES[rel])}
    program = {"steps": [labels_step("c", cand["cats"]), labels_step("r", [ref]),
                         {"id": "t", "op": "relation", "in": "c", "ref": "r", "rel": rel, **frame_args(ctx)}],
               "answer": "t"}
    return Draft("relation", "relation", slots, program)


def _b_nearest_ref(ctx: Context) -> Draft | None:
    sets = candidate_sets(ctx, 2, 5)
    if not sets:
        return None
    cand = ctx.choice(sets)
    refs = unique_refs(ctx, set(cand["cats"]))
    if not refs:
        return None
    ref = ctx.choice(refs)
    slots = {"label": cand["noun"], "labels": cand["plural"], "targets": cand["cats"], "ref": ref,
             "near": ctx.pick(P.NEAREST_PHRASES)}
    program = {"steps": [labels_step("c", cand["cats"]), labels_step("r", [ref]),
                         {"id": "t", "op": "nearest", "in": "c", "ref": "r", **frame_args(ctx)}], "answer": "t"}
    return Draft("nearest_ref", "nearest_ref", slots, program)


def _b_concept_relation(ctx: Context) -> Draft | None:
    options = [c for c in concept_options(ctx, min_objects=2) if len(ids_for(ctx, c["cats"])) <= 3]
    if not options:
        return None
    concept = ctx.choice(options)
    refs = unique_refs(ctx, set(concept["cats"]))
    if not refs:
        return None
    ref = ctx.choice(refs)
    nearest = ctx.rng.random() < 0.5
    slots = {"concept": concept["singular"], "concepts": concept["plural"], "concept_rel": concept["rel"],
             "concept_kind": concept["kind"], "concept_key": concept["key"], "targets": sorted(concept["cats"]),
             "ref": ref}
    steps = [labels_step("c", concept["cats"]), labels_step("r", [ref])]
    if nearest:
        slots["near"] = ctx.pick(P.NEAREST_PHRASES)
        steps.append({"id": "t", "op": "nearest", "in": "c", "ref": "r", **frame_args(ctx)})
        return Draft("concept_nearest", "concept_nearest", slots, {"steps": steps, "answer": "t"})
    rel = rel_choice(ctx)
    slots.update({"rel_key": rel, "rel": ctx.pick(P.REL_PHRASES[rel])})
    steps.append({"id": "t", "op": "relation", "in": "c", "ref": "r", "rel": rel, **frame_args(ctx)})
    return Draft("concept_relation", "concept_relation", slots, {"steps": steps, "answer": "t"})


def _b_relation_extreme(ctx: Context) -> Draft | None:
    sets = candidate_sets(ctx, 3, 3)
    if not sets:
        return None
    cand = ctx.choice(sets)
    refs = unique_refs(ctx, set(cand["cats"]))
    if not refs:
        return None
    ref = ctx.choice(refs)
    rel = rel_choice(ctx)
    by, order = extreme_choice(ctx)
    slots = {"label": cand["noun"], "labels": cand["plural"], "targets": cand["cats"], "ref": ref, "rel_key": rel,
             "rel": ctx.pick(P.REL_PHRASES[rel]), "by": by, "order": order, **by_slots(ctx, by, order)}
    program = {"steps": [labels_step("c", cand["cats"]), labels_step("r", [ref]),
                         {"id": "s", "op": "relation", "in": "c", "ref": "r", "rel": rel, **frame_args(ctx)},
                         {"id": "t", "op": "extreme", "in": "s", "by": by, "order": order, **frame_args(ctx)}],
               "answer": "t"}
    return Draft("relation_extreme", "relation_extreme", slots, program)


SPATIAL_BUILDERS: dict[int, tuple] = {
    1: (_b_global_extreme,),
    2: (_b_label_extreme, _b_label_region, _b_depth_rank),
    3: (_b_relation, _b_nearest_ref),
    4: (_b_concept_relation, _b_relation_extreme),
}
