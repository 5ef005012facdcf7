"""Drawing a query for a scene: pick a (category, level) cell, build, phrase, run the program and check it.

A draft is kept only if its program runs cleanly on the noise-free twin (clear margins), every
label lookup selects exactly the objects of its categories, filters really filter and the
answer is not every object; see :func:`generate_query`.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from fastreasonseg.data import phrasing as P
from fastreasonseg.data.knowledge import KnowledgeBase
from fastreasonseg.data.programs import Execution, Program, execute
from fastreasonseg.data.queries.common import CATEGORIES, LEVELS, Context, Draft, Query, ids_for, make_context
from fastreasonseg.data.queries.semantic import SEMANTIC_BUILDERS
from fastreasonseg.data.queries.spatial import SPATIAL_BUILDERS
from fastreasonseg.data.queries.temporal import TEMPORAL_BUILDERS
from fastreasonseg.data.scenes import Scene

BUILDERS: dict[tuple[str, int], tuple] = {
    **{("semantic", level): builders for level, builders in SEMANTIC_BUILDERS.items()},
    **{("spatial", level): builders for level, builders in SPATIAL_BUILDERS.items()},
    **{("temporal", level): builders for level, builders in TEMPORAL_BUILDERS.items()},
}


def _phrase(ctx: Context, draft: Draft, sentence: bool) -> str:
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


def _acceptable(ctx: Context, draft: Draft, execution: Execution) -> bool:
    answer = execution.answer
    if not execution.robust or not answer:
        return False
    if draft.expect is not None and sorted(draft.expect) != answer:
        return False  # the tools' label matching selects more than the intended categories ("cup" also hits "mug")
    # Every label lookup must select exactly the objects of its categories: the tools' matching follows
    # kind-of links and head nouns ("child" also matches "person", "cup" matches "mug", "bear" matches
    # "teddy bear"), which would change what the words mean.
    for trace in execution.steps:
        if trace.step.op == "labels" and trace.output != ids_for(ctx, trace.step.args["labels"]):
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
    ctx = make_context(scene, kb, rng, holdout_phrasing, frozenset(required_categories))
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
