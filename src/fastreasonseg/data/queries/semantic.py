"""Semantic builders: the answer follows from what people know about the categories (the knowledge base).

L1 a use, a fact or a synonym; L2 a group or a property tag; L3 the object out of place in
the scene type, or two concepts combined (and / minus); L4 a concept plus a size or depth
extreme. Rows of the level table in :mod:`fastreasonseg.data.queries`.
"""

from __future__ import annotations

from fastreasonseg.data import phrasing as P
from fastreasonseg.data.queries.common import (
    PLURAL_VERBS,
    Context,
    Draft,
    by_slots,
    concept_options,
    extreme_choice,
    frame_args,
    ids_for,
    labels_step,
    plural_of,
)


def _b_use(ctx: Context) -> Draft | None:
    kb = ctx.kb
    cats = ctx.prefer_required([c for c in ctx.by_label if c in kb and kb[c].uses])
    if not cats:
        return None
    cat = ctx.choice(cats)
    use = ctx.choice(list(kb[cat].uses))
    targets = sorted(c for c in ctx.by_label if c in kb and use in kb[c].uses)
    return Draft("use", "use", {"use": use, "targets": targets},
                 {"steps": [labels_step("t", targets)], "answer": "t"}, expect=ids_for(ctx, targets))


def _b_fact(ctx: Context) -> Draft | None:
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
        kind = "things" if kind in ("thing", "object", "item", "one") else plural_of(ctx, kind)
    return Draft("fact", "fact", {"fact": fact, "kind": kind, "targets": targets},
                 {"steps": [labels_step("t", targets)], "answer": "t"}, expect=ids_for(ctx, targets))


def _b_synonym(ctx: Context) -> Draft | None:
    kb = ctx.kb
    options = []
    # One instance only ("the hound" names one dog), and no people: their synonyms (pedestrian,
    # toddler, biker) say more than a detector label can confirm. The tools know every synonym
    # (one vocabulary, :mod:`fastreasonseg.twin.vocab`), so the program's lookup of ``cat`` selects
    # what the synonym names; when that is more than the one object, the draft is rejected later.
    singles = [c for c, ids in ctx.by_label.items() if c in kb and len(ids) == 1 and kb[c].group != "person"]
    for cat in ctx.prefer_required(singles):
        options.extend((cat, syn) for syn in kb.unique_synonyms(cat))
    if not options:
        return None
    cat, syn = ctx.choice(options)
    return Draft("synonym", "synonym", {"synonym": syn, "syn": syn, "targets": [cat]},
                 {"steps": [labels_step("t", [cat])], "answer": "t"}, expect=ids_for(ctx, [cat]))


def _b_group(ctx: Context) -> Draft | None:
    options = [c for c in concept_options(ctx, min_objects=1) if c["kind"] == "group"]
    options = [c for c in options if len(c["cats"]) >= 2 or len(ids_for(ctx, c["cats"])) >= 2]
    if not options:
        return None
    concept = ctx.choice(options)
    return Draft("group", "group", {"group": concept["plural"], "group_key": concept["key"],
                                    "targets": sorted(concept["cats"])},
                 {"steps": [labels_step("t", concept["cats"])], "answer": "t"},
                 expect=ids_for(ctx, concept["cats"]))


def _b_tag(ctx: Context) -> Draft | None:
    options = [c for c in concept_options(ctx, min_objects=1) if c["kind"] == "tag"]
    if not options:
        return None
    concept = ctx.choice(options)
    return Draft("tag", "tag", {"tag": concept["plural"], "tag_key": concept["key"], "tag_rel": concept["rel"],
                                "targets": sorted(concept["cats"])},
                 {"steps": [labels_step("t", concept["cats"])], "answer": "t"},
                 expect=ids_for(ctx, concept["cats"]))


def _b_outlier(ctx: Context) -> Draft | None:
    kb, scene = ctx.kb, ctx.scene
    place = scene.scene_type
    # Supporting surfaces (a bench on the beach) are scenery, never the odd one out.
    odd = [c for c in ctx.by_label if c in kb and place not in kb[c].places and not kb[c].is_surface]
    if len(odd) != 1:
        return None
    return Draft("outlier", "outlier", {"place": place.replace("_", " "), "targets": odd},
                 {"steps": [labels_step("t", odd)], "answer": "t"}, expect=ids_for(ctx, odd))


def _b_tag_combo(ctx: Context) -> Draft | None:
    kb = ctx.kb
    bases = [c for c in concept_options(ctx, min_objects=2) if c["kind"] in ("group", "tag")]
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
    program = {"steps": [labels_step("a", base["cats"]), labels_step("b", tag_cats),
                         {"id": "t", "op": "difference" if minus else "intersect", "a": "a", "b": "b"}],
               "answer": "t"}
    return Draft("tag_combo", "tag_combo",
                 {"a": base["plural"], "b": ctx.pick(negs if minus else rels), "base_kind": base["kind"],
                  "base_key": base["key"], "tag_key": tag, "minus": minus, "targets": targets,
                  "base_targets": sorted(base["cats"])},
                 program, expect=ids_for(ctx, targets))


def _b_concept_extreme(ctx: Context) -> Draft | None:
    options = [c for c in concept_options(ctx, min_objects=2) if c["kind"] in ("group", "use")]
    if not options:
        return None
    concept = ctx.choice(options)
    by, order = extreme_choice(ctx)
    slots = {"concept": concept["singular"], "concepts": concept["plural"], "concept_kind": concept["kind"],
             "concept_key": concept["key"], "targets": sorted(concept["cats"]), "by": by, "order": order,
             **by_slots(ctx, by, order)}
    program = {"steps": [labels_step("c", concept["cats"]),
                         {"id": "t", "op": "extreme", "in": "c", "by": by, "order": order, **frame_args(ctx)}],
               "answer": "t"}
    return Draft("concept_extreme", "concept_extreme", slots, program)


SEMANTIC_BUILDERS: dict[int, tuple] = {
    1: (_b_use, _b_fact, _b_synonym),
    2: (_b_group, _b_tag),
    3: (_b_outlier, _b_tag_combo),
    4: (_b_concept_extreme,),
}
