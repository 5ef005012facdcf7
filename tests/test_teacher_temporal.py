"""Generator v5's temporal teacher chains: every answer is what the last tool result lists first.

A 135M student copies the ids a result lists first; it cannot compare the speeds of a
``motion`` list or filter ``track_info`` spans (student v4 answered the first id). The sample
is a small real synth run (200 temporal items), so the tests cover the builders, the programs,
the tools and the teacher together.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from fastreasonseg.data.items import SynthItem, load_items
from fastreasonseg.data.synth import SynthConfig, synthesize
from fastreasonseg.data.teacher import answer_is_copyable
from fastreasonseg.reasoning.protocol import build_rollout, parse_rollout
from fastreasonseg.twin.tools import run_plan, run_tool

# The tool whose result each temporal intent's answer is copied from.
LAST_TOOL = {"moving": "motion", "direction": "motion", "enters": "track_info", "event": "event_order",
             "fastest": "extreme", "concept_fastest": "extreme", "concept_motion_extreme": "extreme",
             "overtake": "compare_position", "approach": "relation"}


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> list[SynthItem]:
    out = tmp_path_factory.mktemp("temporal")
    synthesize(SynthConfig(split="train", n=200, seed=3, video=True, categories=("temporal",)), out)
    return load_items(out / "train.jsonl")


def _role(item: SynthItem) -> str:
    """The intent, with the overtake role ("the one overtaken" ends in a set difference)."""
    if item.meta["intent"] == "overtake":
        return "overtake:overtaken" if item.program.steps[-1].op == "difference" else "overtake:overtaker"
    return item.meta["intent"]


def test_the_sample_covers_every_temporal_intent(items: list[SynthItem]) -> None:
    assert len(items) == 200
    assert {i.meta["intent"] for i in items} == set(LAST_TOOL)


def test_chains_parse_and_their_results_equal_a_fresh_run(items: list[SynthItem]) -> None:
    for item in items:
        parsed = parse_rollout(item.teacher, item.twin)  # with a twin it re-runs every plan
        assert parsed.ok, (item.id, parsed.codes)
        for calls, recorded in zip(parsed.plans, parsed.results, strict=True):
            assert run_plan(item.twin, calls) == recorded
        assert parsed.answer_ids == item.answer_ids  # noise-free twins: the teacher is exact


def test_every_answer_is_copied_from_the_last_result(items: list[SynthItem]) -> None:
    copyable = Counter(_role(i) for i in items if answer_is_copyable(i.teacher))
    total = Counter(_role(i) for i in items)
    # "the runner the other one overtakes" is the one compare_position does not name: the known exception
    assert {role: copyable[role] for role in total} == {role: n if role != "overtake:overtaken" else 0
                                                         for role, n in total.items()}
    for item in items:
        last_round = parse_rollout(item.teacher).plans[-1]
        assert [call["tool"] for call in last_round] == [LAST_TOOL[item.meta["intent"]]] * len(last_round), item.id


def test_criteria_go_into_the_call(items: list[SynthItem]) -> None:
    for item in items:
        call = parse_rollout(item.teacher).plans[-1][0]
        step = item.program.steps[-1]
        if item.meta["intent"] in ("fastest", "concept_fastest"):
            assert call["args"]["by"] == "speed" and call["args"]["order"] == step.args["order"]
        elif item.meta["intent"] == "direction":
            assert call["args"]["direction"] == step.args["direction"]
        elif item.meta["intent"] == "moving":
            assert call["args"]["direction"] == ("moving" if step.args["moves"] else "static")
        elif item.meta["intent"] == "enters":
            assert call["args"]["only"] == step.op
        elif item.meta["intent"] == "event":
            assert call["args"].get("order", "first") == step.args["which"]


def test_no_knowledge_round_for_a_word_the_label_lookup_resolves(items: list[SynthItem]) -> None:
    asked = 0
    for item in items:
        plans = parse_rollout(item.teacher).plans
        for index, plan in enumerate(plans[:-1]):
            for call in plan:
                if call["tool"] != "knowledge":
                    continue
                asked += 1
                by_name = run_tool(item.twin, {"tool": "filter_label", "args": {"label": call["args"]["about"]}})
                used = plans[index + 1][0]["args"]["ids"]
                if isinstance(used, str):
                    used = run_tool(item.twin, {"tool": "filter_label", "args": {"label": used}})["result"]["ids"]
                assert by_name["result"]["ids"] != sorted(used), (item.id, call)
    assert asked > 0  # groups such as "vehicle" over a van and a bus still ask the knowledge tool


def _motion_chain(args: dict, answer: list[int], twin_ids: tuple[int, ...] = (1, 2)) -> str:
    entries = [{"id": i, "moves": True, "direction": "right", "displacement": [100, 0], "depth_change": 0,
                "speed": 50 * i} for i in twin_ids]
    results = [{"tool": "motion", "ok": True, "result": {"motion": entries}}]
    return build_rollout("r", [([{"tool": "motion", "args": args}], results)], answer)


@pytest.mark.parametrize(("text", "copyable"), [
    # the v4 shape: all candidates listed, the answer picked by comparing speeds
    (_motion_chain({"ids": [1, 2]}, [2]), False),
    (_motion_chain({"ids": [1, 2]}, [1]), False),  # the first id, but the list holds more than the answer
    (_motion_chain({"ids": [1, 2], "direction": "right"}, [1, 2]), True),  # the result lists exactly the answer
    (_motion_chain({"ids": [1, 2, 3], "direction": "right"}, [2], twin_ids=(2,)), True),
    (build_rollout("r", [([{"tool": "extreme", "args": {"by": "speed", "order": "min", "ids": [1, 2]}}],
                          [{"tool": "extreme", "ok": True, "result": {"by": "speed", "order": "min", "id": 2,
                                                                     "value": 40, "next": [1, 90]}}])], [2]), True),
    (build_rollout("r", [([{"tool": "extreme", "args": {"by": "speed", "order": "min", "ids": [1, 2]}}],
                          [{"tool": "extreme", "ok": True, "result": {"by": "speed", "order": "min", "id": 2,
                                                                     "value": 40, "next": [1, 90]}}])], [1]), False),
    (build_rollout("r", [([{"tool": "event_order", "args": {"ids": [1, 2], "event": "first_seen"}}],
                          [{"tool": "event_order", "ok": True, "result": {"event": "first_seen", "order": [
                              {"id": 2, "frame": 0, "t": 0}, {"id": 1, "frame": 3, "t": 1.5}]}}])], [1]), False),
    (build_rollout("r", [], [1]), False),  # no tool at all
])
def test_answer_is_copyable(text: str, copyable: bool) -> None:
    assert answer_is_copyable(text) is copyable


def test_saved_config_records_the_category_weights(tmp_path: Path) -> None:
    synthesize(SynthConfig(split="val", n=1, seed=0, video=True, category_weights={"temporal": 2}), tmp_path)
    saved = json.loads((tmp_path / "val.config.json").read_text())
    assert saved["category_weights"] == {"semantic": 1.0, "spatial": 1.0, "temporal": 2.0}
    assert saved["version"] == 5
