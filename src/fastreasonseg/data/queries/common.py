"""What every query builder shares: the :class:`Query` record, a builder's draft and context, slot helpers.

A builder (:mod:`.semantic`, :mod:`.spatial`, :mod:`.temporal`) reads the scene through a
:class:`Context` and returns a :class:`Draft`: the intent, the phrasing template, the slots
that fill it and the program that answers it; :mod:`.generate` runs and checks the draft.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastreasonseg.data import phrasing as P
from fastreasonseg.data.knowledge import KnowledgeBase
from fastreasonseg.data.programs import Program
from fastreasonseg.data.scenes import Scene

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
class Draft:
    intent: str
    template: str
    slots: dict[str, Any]
    program: dict[str, Any]
    expect: list[int] | None = None  # the intended answer, when known independently of the program
    allow_all: bool = False  # the answer may cover every object (group/tag queries)


@dataclass
class Context:
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


def make_context(scene: Scene, kb: KnowledgeBase, rng: np.random.Generator, holdout: bool,
                 required: frozenset[str]) -> Context:
    twin = scene.twin
    labels = {tid: twin.track(tid)[0][1].label for tid in twin.track_ids}
    by_label: dict[str, list[int]] = {}
    for tid, lab in labels.items():
        by_label.setdefault(lab, []).append(tid)
    return Context(scene, kb, rng, holdout, required, twin.is_video, labels, by_label)


def by_slots(ctx: Context, by: str, order: str, locative_only: bool = False) -> dict[str, str]:
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


def plural_of(ctx: Context, label: str) -> str:
    cat = ctx.kb.get(label)
    return cat.plural if cat is not None else label + "s"


def labels_step(step_id: str, labels: list[str]) -> dict[str, Any]:
    return {"id": step_id, "op": "labels", "labels": sorted(set(labels))}


def frame_args(ctx: Context) -> dict[str, int]:
    return {"frame": ctx.scene.twin.frames[0].index} if ctx.video else {}


def ids_for(ctx: Context, categories: list[str]) -> list[int]:
    return sorted(i for c in categories for i in ctx.by_label.get(c, []))


def concept_options(ctx: Context, min_objects: int = 2) -> list[dict[str, Any]]:
    """Concepts (a group, a property tag or a use) covering at least ``min_objects`` objects of the scene."""
    present = list(ctx.by_label)
    kb = ctx.kb
    options = []
    for group in P.GROUP_NAMES:
        cats = [c for c in present if c in kb and kb[c].group == group]
        if len(ids_for(ctx, cats)) >= min_objects:
            options.append({"kind": "group", "key": group, "cats": cats, "plural": ctx.pick(P.GROUP_NAMES[group]),
                            "singular": GROUP_SINGULAR[group], "rel": f"is a kind of {GROUP_SINGULAR[group]}"})
    for tag, (nouns, rels, _neg) in P.TAG_PHRASES.items():
        cats = [c for c in present if c in kb and tag in kb[c].tags]
        if len(ids_for(ctx, cats)) >= min_objects:
            rel = ctx.pick(rels)
            options.append({"kind": "tag", "key": tag, "cats": cats, "plural": ctx.pick(nouns),
                            "singular": f"thing that {singular_verb(rel)}", "rel": singular_verb(rel)})
    uses: dict[str, list[str]] = {}
    for c in present:
        if c in kb:
            for use in kb[c].uses:
                uses.setdefault(use, []).append(c)
    for use, cats in uses.items():
        if len(ids_for(ctx, cats)) >= min_objects:
            options.append({"kind": "use", "key": use, "cats": cats, "plural": f"things you can use to {use}",
                            "singular": f"thing you can use to {use}", "rel": f"can be used to {use}"})
    return options


def singular_verb(phrase: str) -> str:
    """'are sharp' -> 'is sharp', 'need electricity' -> 'needs electricity', 'you can eat' stays."""
    first, _, rest = phrase.partition(" ")
    if first == "are":
        return "is " + rest
    if first == "have":
        return "has " + rest
    if first in ("you", "could", "can", "children", "people", "nobody") or first.endswith("s"):
        return phrase
    return f"{first}s {rest}".strip()


def unique_refs(ctx: Context, exclude: set[str]) -> list[str]:
    return [lab for lab, ids in ctx.by_label.items() if len(ids) == 1 and lab not in exclude]


def multi_labels(ctx: Context, low: int, high: int = 99) -> list[str]:
    return ctx.prefer_required([lab for lab, ids in ctx.by_label.items() if low <= len(ids) <= high])


CANDIDATE_GROUPS = ("person", "animal", "vehicle", "food", "furniture", "electronics", "tool", "toy", "sports")


def candidate_sets(ctx: Context, low: int, high: int = 99, groups: tuple[str, ...] = CANDIDATE_GROUPS,
                   movers_only: bool = False) -> list[dict[str, Any]]:
    """Sets of comparable objects: one label with several instances ("the cups"), or a group ("the animals").

    ``noun``/``plural`` name the set in a query; ``cats`` are the labels its program selects.
    """
    kb = ctx.kb
    out = []
    for label in multi_labels(ctx, low, high):
        if not movers_only or (label in kb and kb[label].moves):
            out.append({"noun": label, "plural": plural_of(ctx, label), "cats": [label], "kind": "label"})
    for group in groups:
        cats = sorted(c for c in ctx.by_label if c in kb and kb[c].group == group and (kb[c].moves or not movers_only))
        n = len(ids_for(ctx, cats))
        if len(cats) >= 2 and low <= n <= high:
            if ctx.required and not set(cats) & ctx.required:
                continue
            out.append({"noun": GROUP_SINGULAR[group], "plural": ctx.pick(P.GROUP_NAMES[group]), "cats": cats,
                        "kind": "group"})
    return out


def extreme_choice(ctx: Context) -> tuple[str, str]:
    return ctx.choice([("area", "max"), ("area", "min"), ("depth", "min"), ("depth", "max")])


def rel_choice(ctx: Context) -> str:
    return ctx.choice(["left_of", "right_of", "in_front_of", "behind", "above", "below"])
