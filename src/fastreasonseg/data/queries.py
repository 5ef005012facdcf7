"""Implicit queries with executable programs: semantic, spatial and temporal, levels 1-4.

Given a scene, :func:`generate_query` picks a (category, level) cell and an intent of that
cell, fills its slots from the scene and the knowledge base, phrases it (a short phrase or
a full sentence, as ReasonSeg's ``is_sentence``), writes its program (:mod:`.programs`)
and keeps it only if running the program on the noise-free twin gives a clear-cut,
non-trivial answer. The answer ids are the program's output, never chosen by hand.

Categories and levels (after RVTBench's semantic/spatial/temporal x L1-L4):

========  ===========================  ===============================  ===============================
level     semantic                     spatial                          temporal (videos only)
========  ===========================  ===============================  ===============================
L1        use, fact, synonym           global extreme (biggest, ...)    moving / still, enters / leaves
L2        group, property tag          label + extreme / region /       direction, first/last event,
                                       two nearest                      fastest / slowest
L3        out of place, tag and/minus  relation to / nearest to a ref   overtake, approach each other
L4        concept + size/depth         concept + relation; relation     concept + motion + depth/size;
                                       + extreme (two tool rounds)      fastest of a concept
========  ===========================  ===============================  ===============================

A level counts the hops: L1 one fact or one measurement, L2 a concept over several
categories or a label plus one measurement, L3 two hops (two concepts, or an object
related to another), L4 three or more (knowledge + relation + measurement). The table is
this project's reading of RVTBench's levels, which that paper defines by example.

In videos, spatial steps measure the first frame and the query says so ("at the start"),
because positions change over time. Colours are not used in queries: real detectors do
not report them, so a student must not learn to rely on them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastreasonseg.data import phrasing as P
from fastreasonseg.data.knowledge import KnowledgeBase
from fastreasonseg.data.programs import Execution, Program, execute
from fastreasonseg.data.scenes import Scene
from fastreasonseg.twin.vocab import label_matches

CATEGORIES: tuple[str, ...] = ("semantic", "spatial", "temporal")
LEVELS: tuple[int, ...] = (1, 2, 3, 4)
GROUP_SINGULAR: dict[str, str] = {
    "animal": "animal", "vehicle": "vehicle", "food": "food item", "furniture": "piece of furniture",
    "electronics": "device", "clothing": "piece of clothing", "tool": "tool", "instrument": "instrument",
    "toy": "toy", "utensil": "utensil", "tableware": "dish", "stationery": "piece of stationery",
    "sports": "piece of sports gear", "plant": "plant", "appliance": "appliance", "person": "person",
    "container": "container",
}
PLURAL_VERBS = frozenset({"are", "have", "come", "grow", "sit", "fit", "leave"})
LOCATIVE_DEPTH = {("depth", "min"): ["closest to the camera", "nearest to the camera", "closest to us",
                                     "nearest to the viewer", "closest to me"],
                  ("depth", "max"): ["farthest from the camera", "farthest away", "furthest back",
                                     "furthest from me"]}


@dataclass
class Query:
    """A generated query: text, its program, and the slots the teacher needs to explain it."""

    text: str
    is_sentence: bool
    category: str
    level: int
    intent: str
    program: Program
    answer_ids: list[int]
    slots: dict[str, Any] = field(default_factory=dict)
    holdout_phrasing: bool = False


@dataclass
class _Draft:
    intent: str
    template: str
    slots: dict[str, Any]
    program: dict[str, Any]
    expect: list[int] | None = None  # the intended answer, when known independently of the program
    allow_all: bool = False  # the answer may cover every object (group/tag queries)


@dataclass
class _Context:
    scene: Scene
    kb: KnowledgeBase
    rng: np.random.Generator
    holdout: bool
    required: frozenset[str]
    video: bool
    labels: dict[int, str]
    by_label: dict[str, list[int]]

    def pick(self, options: list[str]) -> str:
        return P.pick(self.rng, options, self.holdout)

    def choice(self, items: list) -> Any:
        return items[int(self.rng.integers(len(items)))]

    def prefer_required(self, labels: list[str]) -> list[str]:
        wanted = [lab for lab in labels if lab in self.required]
        return wanted or labels


def _context(scene: Scene, kb: KnowledgeBase, rng: np.random.Generator, holdout: bool,
             required: frozenset[str]) -> _Context:
    twin = scene.twin
    labels = {tid: twin.track(tid)[0][1].label for tid in twin.track_ids}
    by_label: dict[str, list[int]] = {}
    for tid, lab in labels.items():
        by_label.setdefault(lab, []).append(tid)
    return _Context(scene, kb, rng, holdout, required, twin.is_video, labels, by_label)


# --------------------------------------------------------------------------- helpers


def _by_slots(ctx: _Context, by: str, order: str, locative_only: bool = False) -> dict[str, str]:
    options = LOCATIVE_DEPTH[(by, order)] if locative_only else P.BY_PHRASES[(by, order)]
    phrase = ctx.pick(options)
    if phrase in P.PREFIX_BY:
        return {"by_pre": phrase + " ", "by_post": "", "by_after": f"that is the {phrase}", "by_is": f"the {phrase}",
                "by_short": phrase, "by_phrase": phrase}
    if phrase.startswith("that "):
        return {"by_pre": "", "by_post": " " + phrase, "by_after": phrase, "by_is": "the one " + phrase,
                "by_short": "one " + phrase, "by_phrase": phrase}
    return {"by_pre": "", "by_post": " " + phrase, "by_after": phrase, "by_is": phrase, "by_short": "one " + phrase,
            "by_phrase": phrase}


def _plural(ctx: _Context, label: str) -> str:
    cat = ctx.kb.get(label)
    return cat.plural if cat is not None else label + "s"


def _labels_step(step_id: str, labels: list[str]) -> dict[str, Any]:
    return {"id": step_id, "op": "labels", "labels": sorted(set(labels))}


def _frame_args(ctx: _Context) -> dict[str, int]:
    return {"frame": ctx.scene.twin.frames[0].index} if ctx.video else {}


def _ids_for(ctx: _Context, categories: list[str]) -> list[int]:
    return sorted(i for c in categories for i in ctx.by_label.get(c, []))


def _concept_options(ctx: _Context, min_objects: int = 2) -> list[dict[str, Any]]:
    """Concepts (a group, a property tag or a use) covering at least ``min_objects`` objects of the scene."""
    present = list(ctx.by_label)
    kb = ctx.kb
    options = []
    for group in P.GROUP_NAMES:
        cats = [c for c in present if c in kb and kb[c].group == group]
        if len(_ids_for(ctx, cats)) >= min_objects:
            options.append({"kind": "group", "key": group, "cats": cats, "plural": ctx.pick(P.GROUP_NAMES[group]),
                            "singular": GROUP_SINGULAR[group], "rel": f"is a kind of {GROUP_SINGULAR[group]}"})
    for tag, (nouns, rels, _neg) in P.TAG_PHRASES.items():
        cats = [c for c in present if c in kb and tag in kb[c].tags]
        if len(_ids_for(ctx, cats)) >= min_objects:
            rel = ctx.pick(rels)
            options.append({"kind": "tag", "key": tag, "cats": cats, "plural": ctx.pick(nouns),
                            "singular": f"thing that {_singular_verb(rel)}", "rel": _singular_verb(rel)})
    uses: dict[str, list[str]] = {}
    for c in present:
        if c in kb:
            for use in kb[c].uses:
                uses.setdefault(use, []).append(c)
    for use, cats in uses.items():
        if len(_ids_for(ctx, cats)) >= min_objects:
            options.append({"kind": "use", "key": use, "cats": cats, "plural": f"things you can use to {use}",
                            "singular": f"thing you can use to {use}", "rel": f"can be used to {use}"})
    return options


def _singular_verb(phrase: str) -> str:
    """'are sharp' -> 'is sharp', 'need electricity' -> 'needs electricity', 'you can eat' stays."""
    first, _, rest = phrase.partition(" ")
    if first == "are":
        return "is " + rest
    if first == "have":
        return "has " + rest
    if first in ("you", "could", "can", "children", "people", "nobody") or first.endswith("s"):
        return phrase
    return f"{first}s {rest}".strip()


def _unique_refs(ctx: _Context, exclude: set[str]) -> list[str]:
    return [lab for lab, ids in ctx.by_label.items() if len(ids) == 1 and lab not in exclude]


def _multi_labels(ctx: _Context, low: int, high: int = 99) -> list[str]:
    return ctx.prefer_required([lab for lab, ids in ctx.by_label.items() if low <= len(ids) <= high])


CANDIDATE_GROUPS = ("person", "animal", "vehicle", "food", "furniture", "electronics", "tool", "toy", "sports")


def _candidate_sets(ctx: _Context, low: int, high: int = 99, groups: tuple[str, ...] = CANDIDATE_GROUPS,
                    movers_only: bool = False) -> list[dict[str, Any]]:
    """Sets of comparable objects: one label with several instances ("the cups"), or a group ("the animals").

    ``noun``/``plural`` name the set in a query; ``cats`` are the labels its program selects.
    """
    kb = ctx.kb
    out = []
    for label in _multi_labels(ctx, low, high):
        if not movers_only or (label in kb and kb[label].moves):
            out.append({"noun": label, "plural": _plural(ctx, label), "cats": [label], "kind": "label"})
    for group in groups:
        cats = sorted(c for c in ctx.by_label if c in kb and kb[c].group == group and (kb[c].moves or not movers_only))
        n = len(_ids_for(ctx, cats))
        if len(cats) >= 2 and low <= n <= high:
            if ctx.required and not set(cats) & ctx.required:
                continue
            out.append({"noun": GROUP_SINGULAR[group], "plural": ctx.pick(P.GROUP_NAMES[group]), "cats": cats,
                        "kind": "group"})
    return out


# --------------------------------------------------------------------------- semantic builders


def _b_use(ctx: _Context) -> _Draft | None:
    kb = ctx.kb
    cats = ctx.prefer_required([c for c in ctx.by_label if c in kb and kb[c].uses])
    if not cats:
        return None
    cat = ctx.choice(cats)
    use = ctx.choice(list(kb[cat].uses))
    targets = sorted(c for c in ctx.by_label if c in kb and use in kb[c].uses)
    return _Draft("use", "use", {"use": use, "targets": targets},
                  {"steps": [_labels_step("t", targets)], "answer": "t"}, expect=_ids_for(ctx, targets))


def _b_fact(ctx: _Context) -> _Draft | None:
    kb = ctx.kb
    cats = ctx.prefer_required([c for c in ctx.by_label if c in kb and kb[c].facts])
    if not cats:
        return None
    cat = ctx.choice(cats)
    fact = ctx.choice(list(kb[cat].facts))
    targets = sorted(c for c in ctx.by_label if c in kb and fact in kb[c].facts)
    plural = fact.split(" ", 1)[0] in PLURAL_VERBS or kb[cat].plural == cat
    kind = ctx.pick(P.KIND_WORDS.get(kb[cat].group, P.THING_WORDS))
    if plural:
        kind = "things" if kind in ("thing", "object", "item", "one") else _plural(ctx, kind)
    return _Draft("fact", "fact", {"fact": fact, "kind": kind, "targets": targets},
                  {"steps": [_labels_step("t", targets)], "answer": "t"}, expect=_ids_for(ctx, targets))


def _b_synonym(ctx: _Context) -> _Draft | None:
    kb = ctx.kb
    options = []
    # One instance only ("the hound" names one dog), and no people: their synonyms (man, woman, boy)
    # say more than a detector label can confirm.
    singles = [c for c, ids in ctx.by_label.items() if c in kb and len(ids) == 1 and kb[c].group != "person"]
    for cat in ctx.prefer_required(singles):
        for syn in kb.unique_synonyms(cat):
            # The word must not also name another object in the scene under the tools' matching rule.
            if not any(label_matches(syn, other) for other in ctx.by_label if other != cat):
                options.append((cat, syn))
    if not options:
        return None
    cat, syn = ctx.choice(options)
    return _Draft("synonym", "synonym", {"synonym": syn, "syn": syn, "targets": [cat]},
                  {"steps": [_labels_step("t", [cat])], "answer": "t"}, expect=_ids_for(ctx, [cat]))


def _b_group(ctx: _Context) -> _Draft | None:
    options = [c for c in _concept_options(ctx, min_objects=1) if c["kind"] == "group"]
    options = [c for c in options if len(c["cats"]) >= 2 or len(_ids_for(ctx, c["cats"])) >= 2]
    if not options:
        return None
    concept = ctx.choice(options)
    return _Draft("group", "group", {"group": concept["plural"], "group_key": concept["key"],
                                     "targets": sorted(concept["cats"])},
                  {"steps": [_labels_step("t", concept["cats"])], "answer": "t"},
                  expect=_ids_for(ctx, concept["cats"]))


def _b_tag(ctx: _Context) -> _Draft | None:
    options = [c for c in _concept_options(ctx, min_objects=1) if c["kind"] == "tag"]
    if not options:
        return None
    concept = ctx.choice(options)
    return _Draft("tag", "tag", {"tag": concept["plural"], "tag_key": concept["key"], "tag_rel": concept["rel"],
                                 "targets": sorted(concept["cats"])},
                  {"steps": [_labels_step("t", concept["cats"])], "answer": "t"},
                  expect=_ids_for(ctx, concept["cats"]))


def _b_outlier(ctx: _Context) -> _Draft | None:
    kb, scene = ctx.kb, ctx.scene
    place = scene.scene_type
    odd = [c for c in ctx.by_label if c in kb and place not in kb[c].places]
    surfaces = {"bench", "dining table", "coffee table", "desk", "counter", "workbench", "nightstand", "picnic table",
                "dresser"}
    odd = [c for c in odd if c not in surfaces]
    if len(odd) != 1:
        return None
    return _Draft("outlier", "outlier", {"place": place.replace("_", " "), "targets": odd},
                  {"steps": [_labels_step("t", odd)], "answer": "t"}, expect=_ids_for(ctx, odd))


def _b_tag_combo(ctx: _Context) -> _Draft | None:
    kb = ctx.kb
    bases = [c for c in _concept_options(ctx, min_objects=2) if c["kind"] in ("group", "tag")]
    if not bases:
        return None
    base = ctx.choice(bases)
    combos = []
    for tag, (_nouns, rels, negs) in P.TAG_PHRASES.items():
        if tag == base["key"]:
            continue
        with_tag = [c for c in base["cats"] if tag in kb[c].tags]
        if 0 < len(with_tag) < len(base["cats"]):
            combos.append((tag, rels, negs, with_tag))
    if not combos:
        return None
    tag, rels, negs, with_tag = ctx.choice(combos)
    minus = ctx.rng.random() < 0.5
    tag_cats = [c for c in ctx.by_label if c in kb and tag in kb[c].tags]
    targets = sorted(set(base["cats"]) - set(with_tag)) if minus else sorted(with_tag)
    program = {"steps": [_labels_step("a", base["cats"]), _labels_step("b", tag_cats),
                         {"id": "t", "op": "difference" if minus else "intersect", "a": "a", "b": "b"}],
               "answer": "t"}
    return _Draft("tag_combo", "tag_combo",
                  {"a": base["plural"], "b": ctx.pick(negs if minus else rels), "base_kind": base["kind"],
                   "base_key": base["key"], "tag_key": tag, "minus": minus, "targets": targets,
                   "base_targets": sorted(base["cats"])},
                  program, expect=_ids_for(ctx, targets))


def _extreme_choice(ctx: _Context) -> tuple[str, str]:
    return ctx.choice([("area", "max"), ("area", "min"), ("depth", "min"), ("depth", "max")])


def _b_concept_extreme(ctx: _Context) -> _Draft | None:
    options = [c for c in _concept_options(ctx, min_objects=2) if c["kind"] in ("group", "use")]
    if not options:
        return None
    concept = ctx.choice(options)
    by, order = _extreme_choice(ctx)
    slots = {"concept": concept["singular"], "concepts": concept["plural"], "concept_kind": concept["kind"],
             "concept_key": concept["key"], "targets": sorted(concept["cats"]), "by": by, "order": order,
             **_by_slots(ctx, by, order)}
    program = {"steps": [_labels_step("c", concept["cats"]),
                         {"id": "t", "op": "extreme", "in": "c", "by": by, "order": order, **_frame_args(ctx)}],
               "answer": "t"}
    return _Draft("concept_extreme", "concept_extreme", slots, program)


# --------------------------------------------------------------------------- spatial builders


def _b_global_extreme(ctx: _Context) -> _Draft | None:
    by, order = ctx.choice([("depth", "min"), ("depth", "max"), ("area", "max"), ("area", "min"), ("x", "min"),
                            ("x", "max"), ("y", "min"), ("y", "max")])
    slots = {"by": by, "order": order, **_by_slots(ctx, by, order)}
    program = {"steps": [{"id": "t", "op": "extreme", "by": by, "order": order, **_frame_args(ctx)}], "answer": "t"}
    return _Draft("global_extreme", "global_extreme", slots, program)


def _b_label_extreme(ctx: _Context) -> _Draft | None:
    sets = _candidate_sets(ctx, 2, groups=("person", "animal", "vehicle"))
    if not sets:
        return None
    cand = ctx.choice(sets)
    by, order = ctx.choice([("depth", "min"), ("depth", "max"), ("area", "max"), ("area", "min"), ("x", "min"),
                            ("x", "max")])
    slots = {"label": cand["noun"], "labels": cand["plural"], "targets": cand["cats"], "by": by, "order": order,
             **_by_slots(ctx, by, order)}
    template = "label_extreme"
    if len(_ids_for(ctx, cand["cats"])) == 2 and ctx.rng.random() < 0.5:
        template = "label_compare"
        slots["cmp"] = ctx.pick(P.COMPARATIVES[(by, order)])
    program = {"steps": [_labels_step("c", cand["cats"]),
                         {"id": "t", "op": "extreme", "in": "c", "by": by, "order": order, **_frame_args(ctx)}],
               "answer": "t"}
    return _Draft("label_extreme", template, slots, program)


def _b_label_region(ctx: _Context) -> _Draft | None:
    from fastreasonseg.twin.tools import grid_center, region_name

    labels = _multi_labels(ctx, 2, 4)
    if not labels:
        return None
    label = ctx.choice(labels)
    frame = ctx.scene.twin.frames[0]
    regions = [region_name(*grid_center(ctx.scene.twin, o)) for o in frame.objects if o.label == label]
    unique = [r for r in regions if regions.count(r) == 1]
    if not unique:
        return None
    region = ctx.choice(unique)
    slots = {"label": label, "labels": _plural(ctx, label), "region_key": region,
             "region": ctx.pick(P.REGION_PHRASES[region])}
    program = {"steps": [_labels_step("c", [label]),
                         {"id": "t", "op": "attribute", "in": "c", "key": "region", "value": region,
                          **_frame_args(ctx)}], "answer": "t"}
    return _Draft("label_region", "label_region", slots, program)


def _b_depth_rank(ctx: _Context) -> _Draft | None:
    labels = _multi_labels(ctx, 3, 5)
    if not labels:
        return None
    label = ctx.choice(labels)
    n = 2 if len(ctx.by_label[label]) <= 3 or ctx.rng.random() < 0.6 else 3
    take = ctx.choice(["nearest", "farthest"])
    order = "min" if take == "nearest" else "max"
    slots = {"label": label, "labels": _plural(ctx, label), "n": P.NUMBER_WORDS[n], "n_value": n, "take": take,
             **_by_slots(ctx, "depth", order, locative_only=True)}
    program = {"steps": [_labels_step("c", [label]),
                         {"id": "t", "op": "depth_rank", "in": "c", "take": take, "n": n, **_frame_args(ctx)}],
               "answer": "t"}
    return _Draft("depth_rank", "depth_rank", slots, program)


def _rel_choice(ctx: _Context) -> str:
    return ctx.choice(["left_of", "right_of", "in_front_of", "behind", "above", "below"])


def _b_relation(ctx: _Context) -> _Draft | None:
    sets = _candidate_sets(ctx, 2, 3)
    if not sets:
        return None
    cand = ctx.choice(sets)
    refs = _unique_refs(ctx, set(cand["cats"]))
    if not refs:
        return None
    ref = ctx.choice(refs)
    rel = _rel_choice(ctx)
    slots = {"label": cand["noun"], "labels": cand["plural"], "targets": cand["cats"], "ref": ref, "rel_key": rel,
             "rel": ctx.pick(P.REL_PHRASES[rel])}
    program = {"steps": [_labels_step("c", cand["cats"]), _labels_step("r", [ref]),
                         {"id": "t", "op": "relation", "in": "c", "ref": "r", "rel": rel, **_frame_args(ctx)}],
               "answer": "t"}
    return _Draft("relation", "relation", slots, program)


def _b_nearest_ref(ctx: _Context) -> _Draft | None:
    sets = _candidate_sets(ctx, 2, 5)
    if not sets:
        return None
    cand = ctx.choice(sets)
    refs = _unique_refs(ctx, set(cand["cats"]))
    if not refs:
        return None
    ref = ctx.choice(refs)
    slots = {"label": cand["noun"], "labels": cand["plural"], "targets": cand["cats"], "ref": ref,
             "near": ctx.pick(P.NEAREST_PHRASES)}
    program = {"steps": [_labels_step("c", cand["cats"]), _labels_step("r", [ref]),
                         {"id": "t", "op": "nearest", "in": "c", "ref": "r", **_frame_args(ctx)}], "answer": "t"}
    return _Draft("nearest_ref", "nearest_ref", slots, program)


def _b_concept_relation(ctx: _Context) -> _Draft | None:
    options = [c for c in _concept_options(ctx, min_objects=2) if len(_ids_for(ctx, c["cats"])) <= 3]
    if not options:
        return None
    concept = ctx.choice(options)
    refs = _unique_refs(ctx, set(concept["cats"]))
    if not refs:
        return None
    ref = ctx.choice(refs)
    nearest = ctx.rng.random() < 0.5
    slots = {"concept": concept["singular"], "concepts": concept["plural"], "concept_rel": concept["rel"],
             "concept_kind": concept["kind"], "concept_key": concept["key"], "targets": sorted(concept["cats"]),
             "ref": ref}
    steps = [_labels_step("c", concept["cats"]), _labels_step("r", [ref])]
    if nearest:
        slots["near"] = ctx.pick(P.NEAREST_PHRASES)
        steps.append({"id": "t", "op": "nearest", "in": "c", "ref": "r", **_frame_args(ctx)})
        return _Draft("concept_nearest", "concept_nearest", slots, {"steps": steps, "answer": "t"})
    rel = _rel_choice(ctx)
    slots.update({"rel_key": rel, "rel": ctx.pick(P.REL_PHRASES[rel])})
    steps.append({"id": "t", "op": "relation", "in": "c", "ref": "r", "rel": rel, **_frame_args(ctx)})
    return _Draft("concept_relation", "concept_relation", slots, {"steps": steps, "answer": "t"})


def _b_relation_extreme(ctx: _Context) -> _Draft | None:
    sets = _candidate_sets(ctx, 3, 3)
    if not sets:
        return None
    cand = ctx.choice(sets)
    refs = _unique_refs(ctx, set(cand["cats"]))
    if not refs:
        return None
    ref = ctx.choice(refs)
    rel = _rel_choice(ctx)
    by, order = _extreme_choice(ctx)
    slots = {"label": cand["noun"], "labels": cand["plural"], "targets": cand["cats"], "ref": ref, "rel_key": rel,
             "rel": ctx.pick(P.REL_PHRASES[rel]), "by": by, "order": order, **_by_slots(ctx, by, order)}
    program = {"steps": [_labels_step("c", cand["cats"]), _labels_step("r", [ref]),
                         {"id": "s", "op": "relation", "in": "c", "ref": "r", "rel": rel, **_frame_args(ctx)},
                         {"id": "t", "op": "extreme", "in": "s", "by": by, "order": order, **_frame_args(ctx)}],
               "answer": "t"}
    return _Draft("relation_extreme", "relation_extreme", slots, program)


# --------------------------------------------------------------------------- temporal builders


def _b_moving(ctx: _Context) -> _Draft | None:
    sets = _candidate_sets(ctx, 2, 3, groups=("person", "animal", "vehicle", "sports"), movers_only=True)
    if not sets:
        return None
    cand = ctx.choice(sets)
    moves = bool(ctx.rng.random() < 0.65)
    verbs, adjectives = P.MOVING_WORDS[moves]
    slots = {"label": cand["noun"], "labels": cand["plural"], "targets": cand["cats"], "moves": moves, "moving": ctx.pick(verbs),
             "moving_adj": ctx.pick(adjectives)}
    program = {"steps": [_labels_step("c", cand["cats"]), {"id": "t", "op": "moving", "in": "c", "moves": moves}],
               "answer": "t"}
    return _Draft("moving", "moving", slots, program)


def _b_enters(ctx: _Context) -> _Draft | None:
    sets = _candidate_sets(ctx, 2, 3, groups=("person", "animal", "vehicle", "sports"), movers_only=True)
    if not sets:
        return None
    cand = ctx.choice(sets)
    kind = ctx.choice(["enters", "leaves"])
    verbs, ings = P.ENTER_WORDS[kind]
    slots = {"label": cand["noun"], "labels": cand["plural"], "targets": cand["cats"], "kind": kind, "enters": ctx.pick(verbs),
             "enters_ing": ctx.pick(ings)}
    program = {"steps": [_labels_step("c", cand["cats"]), {"id": "t", "op": kind, "in": "c"}], "answer": "t"}
    return _Draft("enters", "enters", slots, program)


def _b_direction(ctx: _Context) -> _Draft | None:
    sets = _candidate_sets(ctx, 2, 3, groups=("person", "animal", "vehicle", "sports"), movers_only=True)
    if not sets:
        return None
    cand = ctx.choice(sets)
    direction = ctx.choice(list(P.DIRECTION_WORDS))
    slots = {"label": cand["noun"], "labels": cand["plural"], "targets": cand["cats"], "direction": direction,
             "dir_ing": ctx.pick(P.DIRECTION_WORDS[direction])}
    program = {"steps": [_labels_step("c", cand["cats"]),
                         {"id": "t", "op": "moving", "in": "c", "moves": True, "direction": direction}], "answer": "t"}
    return _Draft("direction", "direction", slots, program)


def _b_event(ctx: _Context) -> _Draft | None:
    sets = _candidate_sets(ctx, 2, 3, groups=("person", "animal", "vehicle", "sports"), movers_only=True)
    if not sets:
        return None
    cand = ctx.choice(sets)
    event, which = ctx.choice(list(P.EVENT_WORDS))
    verbs, ings = P.EVENT_WORDS[(event, which)]
    slots = {"label": cand["noun"], "labels": cand["plural"], "targets": cand["cats"], "event": event, "which": which,
             "event_phrase": ctx.pick(verbs), "event_ing": ctx.pick(ings)}
    program = {"steps": [_labels_step("c", cand["cats"]), {"id": "t", "op": "event", "in": "c", "event": event,
                                                       "which": which}], "answer": "t"}
    return _Draft("event", "event", slots, program)


def _b_fastest(ctx: _Context) -> _Draft | None:
    sets = _candidate_sets(ctx, 2, 3, groups=("person", "animal", "vehicle", "sports"), movers_only=True)
    if not sets:
        return None
    cand = ctx.choice(sets)
    order = ctx.choice(["max", "min"])
    adjectives, adverbs = P.SPEED_WORDS[order]
    slots = {"label": cand["noun"], "labels": cand["plural"], "targets": cand["cats"], "order": order,
             "speed_adj": ctx.pick(adjectives),
             "speed_adv": ctx.pick(adverbs)}
    # "the slowest dog" means the slowest of the dogs that move, not one standing still.
    steps = [_labels_step("c", cand["cats"]), {"id": "t", "op": "fastest", "in": "c", "order": order,
                                                 "moving_only": order == "min"}]
    return _Draft("fastest", "fastest", slots, {"steps": steps, "answer": "t"})


def _pair_labels(ctx: _Context, motion: str) -> tuple[int, int, str, str] | None:
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


def _b_overtake(ctx: _Context) -> _Draft | None:
    pair = _pair_labels(ctx, "overtake")
    if pair is None:
        return None
    _a, _b, la, lb = pair
    program = {"steps": [_labels_step("p", [la, lb]), {"id": "o", "op": "overtakes", "in": "p", "axis": "x"}],
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
        return _Draft("overtake", "overtake", {**slots, "role": "overtaker"}, program)
    program = {"steps": [*program["steps"], {"id": "t", "op": "difference", "a": "p", "b": "o"}], "answer": "t"}
    slots = {**slots, "a": ("other " + a_label) if same else a_label, "b": b_label}
    return _Draft("overtake", "overtaken", {**slots, "role": "overtaken"}, program)


def _b_approach(ctx: _Context) -> _Draft | None:
    pair = _pair_labels(ctx, "meet")
    if pair is None:
        return None
    _a, _b, la, lb = pair
    slots = {"a": la, "b": ("other " + lb) if la == lb else lb, "a_label": la, "b_label": lb}
    program = {"steps": [_labels_step("p", [la, lb]), {"id": "t", "op": "approach", "in": "p"}], "answer": "t"}
    return _Draft("approach", "approach", slots, program)


def _b_concept_motion(ctx: _Context) -> _Draft | None:
    options = [c for c in _concept_options(ctx, min_objects=2)
               if c["kind"] == "group" and c["key"] in ("person", "animal", "vehicle", "sports")
               and len(_ids_for(ctx, c["cats"])) <= 3]
    if not options:
        return None
    concept = ctx.choice(options)
    slots = {"concept": concept["singular"], "concepts": concept["plural"], "concept_kind": concept["kind"],
             "concept_key": concept["key"], "targets": sorted(concept["cats"])}
    if ctx.rng.random() < 0.5:
        order = ctx.choice(["max", "min"])
        adjectives, adverbs = P.SPEED_WORDS[order]
        slots.update({"order": order, "speed_adj": ctx.pick(adjectives), "speed_adv": ctx.pick(adverbs)})
        program = {"steps": [_labels_step("c", concept["cats"]),
                             {"id": "t", "op": "fastest", "in": "c", "order": order, "moving_only": order == "min"}],
                   "answer": "t"}
        return _Draft("concept_fastest", "concept_fastest", slots, program)
    by, order = _extreme_choice(ctx)
    slots.update({"by": by, "order": order, **_by_slots(ctx, by, order)})
    program = {"steps": [_labels_step("c", concept["cats"]), {"id": "m", "op": "moving", "in": "c", "moves": True},
                         {"id": "t", "op": "extreme", "in": "m", "by": by, "order": order, **_frame_args(ctx)}],
               "answer": "t"}
    return _Draft("concept_motion_extreme", "concept_motion_extreme", slots, program)


BUILDERS: dict[tuple[str, int], tuple] = {
    ("semantic", 1): (_b_use, _b_fact, _b_synonym),
    ("semantic", 2): (_b_group, _b_tag),
    ("semantic", 3): (_b_outlier, _b_tag_combo),
    ("semantic", 4): (_b_concept_extreme,),
    ("spatial", 1): (_b_global_extreme,),
    ("spatial", 2): (_b_label_extreme, _b_label_region, _b_depth_rank),
    ("spatial", 3): (_b_relation, _b_nearest_ref),
    ("spatial", 4): (_b_concept_relation, _b_relation_extreme),
    ("temporal", 1): (_b_moving, _b_enters),
    ("temporal", 2): (_b_direction, _b_event, _b_fastest),
    ("temporal", 3): (_b_overtake, _b_approach),
    ("temporal", 4): (_b_concept_motion,),
}


# --------------------------------------------------------------------------- phrasing and checks


def _phrase(ctx: _Context, draft: _Draft, sentence: bool) -> str:
    templates = (P.LONG if sentence else P.SHORT)[draft.template]
    template = ctx.pick(templates)
    text = template.format(**{k: v for k, v in draft.slots.items() if isinstance(v, str)})
    uses_frame = any("frame" in step for step in draft.program["steps"])
    if ctx.video and uses_frame:
        if sentence and text[-1] in ".?":
            text = text[:-1] + " " + ctx.pick(["at the start of the clip", "in the first frame", "at the beginning"]) + text[-1]
        elif not sentence:
            text += " " + ctx.pick(["at the start", "in the first frame", "at first"])
    text = " ".join(text.split())
    return text[0].upper() + text[1:] if sentence else text


def _acceptable(ctx: _Context, draft: _Draft, execution: Execution) -> bool:
    answer = execution.answer
    if not execution.robust or not answer:
        return False
    if draft.expect is not None and sorted(draft.expect) != answer:
        return False  # the tools' label matching disagrees with the intended categories (e.g. "cup" also hits "mug")
    # Every label lookup must select exactly the objects of its categories: the tools' matching is
    # generous ("child" also matches "person", "cup" matches "mug") and would change what the words mean.
    for trace in execution.steps:
        if trace.step.op == "labels" and trace.output != _ids_for(ctx, trace.step.args["labels"]):
            return False
    all_ids = set(ctx.labels)
    if not draft.allow_all and set(answer) == all_ids:
        return False
    # Filters must actually filter: a relation/motion step that keeps every candidate is a trivial query.
    for trace in execution.steps:
        op = trace.step.op
        if op in ("relation", "moving", "enters", "leaves", "attribute") and trace.step.args.get("in"):
            before = execution.step(trace.step.args["in"]).output
            if set(trace.output) == set(before) and len(before) > 0:
                return False
    if ctx.required and not any(ctx.labels[i] in ctx.required for i in answer):
        return False
    return True


def generate_query(scene: Scene, rng: np.random.Generator, kb: KnowledgeBase, *, holdout_phrasing: bool = False,
                   required_categories: frozenset[str] = frozenset(), categories: tuple[str, ...] = CATEGORIES,
                   levels: tuple[int, ...] = LEVELS, sentence_share: float = 0.4,
                   max_attempts: int = 40) -> Query | None:
    """A query for ``scene`` whose program runs cleanly on the noise-free twin, or None if none fits.

    The (category, level) cell is drawn uniformly from those possible for the scene
    (temporal needs a video); within a cell the intents are tried in random order.
    ``required_categories`` (held-out category test subset) forces the answer to contain
    an object of one of those categories.
    """
    ctx = _context(scene, kb, rng, holdout_phrasing, frozenset(required_categories))
    cells = [(c, lev) for c in categories for lev in levels if (c, lev) in BUILDERS and (c != "temporal" or ctx.video)]
    if not cells:
        return None
    for _attempt in range(max_attempts):
        category, level = cells[int(rng.integers(len(cells)))]
        builders = list(BUILDERS[(category, level)])
        rng.shuffle(builders)
        for builder in builders:
            draft = builder(ctx)
            if draft is None:
                continue
            if draft.intent in ("group", "tag"):
                draft.allow_all = False
            program = Program.from_dict(draft.program)
            execution = execute(program, scene.twin)
            if not _acceptable(ctx, draft, execution):
                continue
            sentence = bool(rng.random() < sentence_share)
            text = _phrase(ctx, draft, sentence)
            return Query(text=text, is_sentence=sentence, category=category, level=level, intent=draft.intent,
                         program=program, answer_ids=execution.answer, slots=dict(draft.slots),
                         holdout_phrasing=holdout_phrasing)
    return None


def category_counts(queries: list[Query]) -> Counter:
    return Counter((q.category, q.level) for q in queries)
