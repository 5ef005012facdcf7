"""The programmatic teacher asks the knowledge tool where an intent names a use, fact, group or tag,
and only where the tool ranks exactly the answer first (so chains never teach overruling the tool)."""

from __future__ import annotations

import json

import pytest

from fastreasonseg.data.synth import SynthConfig, generate_item
from fastreasonseg.reasoning.protocol import parse_rollout
from fastreasonseg.twin.core import DigitalTwin
from fastreasonseg.twin.tools import run_plan

pytestmark = pytest.mark.slow  # embeds with the real MiniLM


@pytest.fixture(scope="module")
def items() -> list[dict]:
    config = SynthConfig(split="train", n=60, seed=11)
    return [json.loads(json.dumps(generate_item(config, i))) for i in range(config.n)]


def test_knowledge_chains_answer_what_the_tool_ranks_first(items: list[dict]) -> None:
    asked = [item for item in items if '"tool": "knowledge"' in item["teacher"]]
    assert len(asked) >= 10
    own_words = 0
    for item in asked:
        twin = DigitalTwin.from_dict(item["twin"])
        parsed = parse_rollout(item["teacher"], twin)
        assert parsed.format_ok and not parsed.failures
        first = parsed.plans[0][0]
        assert first["tool"] == "knowledge" and first["args"]["about"].strip()
        own_words += first["args"]["about"].lower() in item["query"].lower()
        [result] = run_plan(twin, [first])  # the recorded results are what the tool says now
        ranked = [i for i, _ in result["result"]["ranked"]]
        if len(parsed.plans) == 1:  # one round: the answer is the top of the ranking
            assert set(parsed.answer_ids) == set(ranked[: len(parsed.answer_ids)])
        else:  # a later round works on the top-ranked candidates
            later = parsed.plans[1][0]["args"]
            candidates = later.get("ids") or []
            if isinstance(candidates, str):  # named: what the tools resolve the name to
                candidates = run_plan(twin, [{"tool": "filter_label", "args": {"label": candidates}}])[0]["result"]["ids"]
            assert set(candidates) <= set(ranked)
    assert own_words >= 0.8 * len(asked)  # the tool is asked in the request's own words


def test_intents_without_a_concept_never_ask_it(items: list[dict]) -> None:
    for item in items:
        if item["meta"]["intent"] in ("relation", "nearest_ref", "label_extreme", "global_extreme", "synonym"):
            assert '"tool": "knowledge"' not in item["teacher"]


def test_the_knowledge_tool_prefers_the_instrument_to_the_surface_unless_a_place_is_asked() -> None:
    """'slice the loaf' -> knife, not the cutting board it is sliced on; 'where do I chop vegetables' -> the board."""
    from fastreasonseg.twin.tools.knowledge import relevance

    labels = ["cutting board", "bread", "knife", "mug", "spoon", "refrigerator", "potted plant"]
    for phrase in ("slice the loaf", "what would I use to slice the loaf", "cut bread"):
        scores = relevance(phrase, labels)
        assert max(scores, key=scores.get) == "knife", (phrase, scores)
    scores = relevance("where do I chop vegetables", labels)
    assert max(scores, key=scores.get) == "cutting board", scores
    scores = relevance("somewhere to sit", ["chair", "tv", "cup"])
    assert max(scores, key=scores.get) == "chair", scores
