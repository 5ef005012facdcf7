"""The rollout engine with scripted backends: pause at </plan>, tool execution, resume, every runtime failure.

A scripted backend returns fixed continuations, so these tests exercise the engine (what it
sends, what it inserts, how it records failures), not a model; the real model paths are in
test_reasoning_hf.py and test_reasoning_llamacpp.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

from fastreasonseg.reasoning.backends.base import Generation, GenerationRequest, ReasonerBackend
from fastreasonseg.reasoning.engine import RolloutConfig, RolloutEngine
from fastreasonseg.reasoning.prompt import PromptBuilder
from fastreasonseg.reasoning.protocol import build_rollout, parse_rollout, results_block
from fastreasonseg.twin import DigitalTwin, Frame, Source, make_object
from fastreasonseg.twin.tools import run_plan

PLAN = [{"tool": "depth_order", "args": {"ids": [3, 8]}}]
PLAN_TEXT = '<plan>[{"tool": "depth_order", "args": {"ids": [3, 8]}}]</plan>'
REASON = "<reason>two cups; the nearer one</reason>\n"


def scene() -> DigitalTwin:
    objects = (
        make_object(3, "cup", 0.9, [10, 10, 30, 30], depth=(0.2, 0.01)),
        make_object(8, "cup", 0.8, [50, 10, 70, 30], depth=(0.6, 0.01)),
        make_object(9, "table", 0.7, [0, 30, 100, 50], depth=(0.5, 0.1)),
    )
    return DigitalTwin(source=Source(kind="image", width=100, height=50), frames=(Frame(0, 0.0, objects),))


class ScriptedBackend(ReasonerBackend):
    """Returns the next scripted (text, stop_reason) per call and records every request."""

    name = "scripted"

    def __init__(self, script: Sequence[tuple[str, str] | str]):
        self.script = [s if isinstance(s, tuple) else (s, "stop") for s in script]
        self.requests: list[GenerationRequest] = []

    def complete(self, request: GenerationRequest) -> Generation:
        self.requests.append(request)
        if not self.script:
            return Generation("", "eos")
        text, reason = self.script.pop(0)
        if reason == "error":
            return Generation("", "error", error=text)
        return Generation(text, reason, prompt_tokens=100, new_tokens=max(1, len(text) // 4), cached_tokens=40)


def run(script, query: str = "the nearer cup", **config) -> tuple:
    backend = ScriptedBackend(script)
    engine = RolloutEngine(backend, RolloutConfig(**config))
    twin = scene()
    return engine.run(twin, query), backend, twin


def test_pause_runs_tools_inserts_results_and_resumes() -> None:
    result, backend, twin = run([REASON + PLAN_TEXT, "<answer>[3]</answer>"])
    expected_results = run_plan(twin, PLAN)
    assert result.rounds[0].results == expected_results
    assert backend.requests[0].assistant_prefix == ""
    assert backend.requests[1].assistant_prefix == REASON + PLAN_TEXT + results_block(expected_results)
    assert result.text == build_rollout("two cups; the nearer one", [(PLAN, expected_results)], [3])
    assert result.answer_ids == [3]
    assert result.failures == [] and result.format_ok
    assert result.generation_calls == 2 and result.new_tokens > 0 and result.cached_tokens == 80
    assert parse_rollout(result.text, twin).ok  # the text is a valid teacher-style chain


def test_requests_carry_stops_budget_and_same_messages() -> None:
    _, backend, _ = run([REASON + PLAN_TEXT, "<answer>[3]</answer>"], max_new_tokens_per_turn=50, max_new_tokens=60)
    first, second = backend.requests
    assert tuple(first.stop) == ("</plan>", "</answer>")
    assert first.max_new_tokens == 50
    assert second.max_new_tokens == 60 - first_len_tokens(REASON + PLAN_TEXT)
    assert first.messages == second.messages
    assert first.temperature == 0.0


def first_len_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def test_direct_answer_without_tools() -> None:
    result, backend, _ = run([REASON + "<answer>[8, 3]</answer>"])
    assert result.answer_ids == [8, 3] and result.rounds == [] and len(backend.requests) == 1


@pytest.mark.parametrize(("plan", "code"), [
    ("<plan>[{]</plan>", "invalid_plan_json"),
    ('<plan>[{"tool": "teleport", "args": {}}]</plan>', "unknown_tool"),
    ('<plan>[{"tool": "depth_order", "args": {"ids": [3, 77]}}]</plan>', "tool_error"),
])
def test_bad_plans_get_error_results_and_a_recorded_failure(plan: str, code: str) -> None:
    result, backend, _ = run([REASON + plan, "<answer>[3]</answer>"])
    assert code in [f.code for f in result.failures]
    inserted = result.rounds[0].results
    assert inserted and inserted[0]["ok"] is False and inserted[0]["error"]
    assert backend.requests[1].assistant_prefix.endswith(results_block(inserted))
    assert result.answer_ids == [3]  # the model could still answer


def test_close_plan_without_open_tag() -> None:
    result, _, _ = run([REASON + "depth please</plan>", "<answer>[3]</answer>"])
    assert result.rounds[0].results[0]["error"] == "</plan> without a matching <plan>"
    assert "stray_close_tag" in [f.code for f in result.failures]


def test_tool_round_limit() -> None:
    result, backend, _ = run([REASON + PLAN_TEXT, PLAN_TEXT, PLAN_TEXT], max_tool_rounds=1)
    codes = [f.code for f in result.failures]
    assert "too_many_tool_rounds" in codes and "missing_answer" in codes
    assert len(result.rounds) == 1 and len(backend.requests) == 2
    assert result.answer_ids == []


@pytest.mark.parametrize(("script", "code"), [
    ([("<reason>long long", "length")], "token_budget_exhausted"),
    ([("<reason>r</reason>", "eos")], "ended_without_answer"),
    ([("endpoint down", "error")], "backend_error"),
])
def test_runtime_failures(script, code: str) -> None:
    result, _, _ = run(script)
    assert code in [f.code for f in result.failures]
    assert result.answer_ids == []


def test_total_token_budget_stops_after_a_round() -> None:
    # The scripted backend reports len(text)//4 tokens; a budget below the first turn's cost ends the rollout.
    result, backend, _ = run([REASON + PLAN_TEXT, "<answer>[3]</answer>"], max_new_tokens=5)
    assert "token_budget_exhausted" in [f.code for f in result.failures]
    assert len(backend.requests) == 1


def test_answer_ids_outside_the_twin_are_dropped_and_reported() -> None:
    result, _, _ = run([REASON + "<answer>[3, 42]</answer>"])
    assert result.answer_ids == [3]
    assert "unknown_ids" in [f.code for f in result.failures]


def test_text_after_a_stop_string_is_trimmed() -> None:
    result, _, _ = run([REASON + PLAN_TEXT + "\n<results>[made up]</results>", "<answer>[3]</answer>"])
    assert "made up" not in result.text
    assert result.failures == []


class BatchingBackend(ScriptedBackend):
    """Per-query scripts; complete_many records the batch sizes (lockstep rounds)."""

    supports_batching = True

    def __init__(self, scripts: dict[str, list[str]]):
        super().__init__([])
        self.scripts = scripts
        self.batches: list[int] = []

    def complete(self, request: GenerationRequest) -> Generation:
        self.requests.append(request)
        query = request.messages[-1]["content"].rsplit("Request: ", 1)[1]
        return Generation(self.scripts[query].pop(0), "stop", new_tokens=5)

    def complete_many(self, requests):
        self.batches.append(len(requests))
        return [self.complete(r) for r in requests]


def test_run_many_in_lockstep_matches_sequential() -> None:
    scripts = {"q1": [REASON + PLAN_TEXT, "<answer>[3]</answer>"], "q2": [REASON + "<answer>[9]</answer>"]}
    batching = BatchingBackend({k: list(v) for k, v in scripts.items()})
    twin = scene()
    batched = RolloutEngine(batching).run_many(twin, ["q1", "q2"])
    sequential_backend = BatchingBackend({k: list(v) for k, v in scripts.items()})
    sequential_backend.supports_batching = False
    sequential = RolloutEngine(sequential_backend).run_many(twin, ["q1", "q2"])
    assert [r.text for r in batched] == [r.text for r in sequential]
    assert [r.answer_ids for r in batched] == [[3], [9]]
    assert batching.batches == [2, 1]  # round 1 both queries, round 2 only the one that planned
    assert sequential_backend.batches == []


class GrammarBackend(ScriptedBackend):
    supports_grammar = True


def test_grammar_follows_the_rollout_state() -> None:
    backend = GrammarBackend([REASON + PLAN_TEXT, PLAN_TEXT, "<answer>[3]</answer>"])
    RolloutEngine(backend, RolloutConfig(max_tool_rounds=2)).run(scene(), "q")
    roots = [r.extra["grammar"].splitlines()[0] for r in backend.requests]
    assert roots[0].startswith('root ::= "<reason>"')
    assert roots[1] == "root ::= (plan | answer)"
    assert roots[2] == "root ::= answer"  # no tool rounds left: the model must answer
    assert 'oid ::= "3" | "8" | "9"' in backend.requests[0].extra["grammar"]


def test_a_repeated_plan_leaves_only_the_answer_open() -> None:
    other = '<plan>[{"tool": "attributes", "args": {"ids": [9]}}]</plan>'
    backend = GrammarBackend([REASON + PLAN_TEXT, other, PLAN_TEXT, "<answer>[3]</answer>"])
    result = RolloutEngine(backend, RolloutConfig(max_tool_rounds=5)).run(scene(), "q")
    roots = [r.extra["grammar"].splitlines()[0] for r in backend.requests]
    # a new plan keeps tools open; the same calls as round 1 again close them
    assert roots[1:] == ["root ::= (plan | answer)", "root ::= (plan | answer)", "root ::= answer"]
    assert result.answer_ids == [3] and len(result.rounds) == 3


def test_unconstrained_config_sends_no_grammar() -> None:
    backend = GrammarBackend([REASON + "<answer>[3]</answer>"])
    RolloutEngine(backend, RolloutConfig(constrained=False)).run(scene(), "q")
    assert "grammar" not in backend.requests[0].extra


def test_prompt_puts_the_twin_before_the_query() -> None:
    engine = RolloutEngine(ScriptedBackend([]))
    twin = scene()
    a, b = engine.messages(twin, "first query"), engine.messages(twin, "another one")
    assert a[:-1] == b[:-1]
    common = len(a[-1]["content"]) - len("first query")
    assert a[-1]["content"][:common] == b[-1]["content"][:common]
    assert a[-1]["content"].startswith("Scene:\n") and "cup" in a[-1]["content"]


def test_few_shot_examples_are_valid_rollouts() -> None:
    builder = PromptBuilder(few_shot=True)
    answers = [m["content"] for m in builder.examples if m["role"] == "assistant"]
    assert len(answers) == 2
    from fastreasonseg.reasoning.prompt import _example_twin

    for text in answers:
        assert parse_rollout(text, _example_twin()).ok
    assert PromptBuilder(few_shot=False).messages("S", "q")[0]["role"] == "system"
    assert len(PromptBuilder(few_shot=False).messages("S", "q")) == 2


@pytest.mark.parametrize("kwargs", [{"max_tool_rounds": -1}, {"max_new_tokens": 0}, {"temperature": -1.0},
                                    {"twin_max_tokens": 4}, {"reason_chars": 0}])
def test_config_validation(kwargs) -> None:
    with pytest.raises(ValueError):
        RolloutConfig(**kwargs)


def test_twin_text_cache_follows_the_twin_object() -> None:
    engine = RolloutEngine(ScriptedBackend([]))
    first = engine.twin_text(scene())  # the temporary twin is freed after this call
    objects = (make_object(5, "giraffe", 0.9, [1, 1, 9, 9]),)
    other = DigitalTwin(source=Source(kind="image", width=100, height=50), frames=(Frame(0, 0.0, objects),))
    text = engine.twin_text(other)
    assert "giraffe" in text and "cup" in first and text != first
    assert engine.twin_text(other) is text  # same object: served from the cache


def test_a_disabled_tool_is_left_out_of_the_grammar_and_not_run() -> None:
    call = '<plan>[{"tool": "knowledge", "args": {"about": "drink from"}}]</plan>'
    backend = GrammarBackend([REASON + call, "<answer>[3]</answer>"])
    result = RolloutEngine(backend, RolloutConfig(prompt="v2", disabled_tools=("knowledge",))).run(scene(), "q")
    assert "knowledge" not in backend.requests[0].extra["grammar"]
    assert result.rounds[0].results == [{"tool": "knowledge", "ok": False,
                                         "error": "the tool 'knowledge' is switched off in this run"}]
    on = GrammarBackend([REASON + "<answer>[3]</answer>"])
    RolloutEngine(on, RolloutConfig(prompt="v2")).run(scene(), "q")
    assert '\\"knowledge\\"' in on.requests[0].extra["grammar"]  # the tool-name literal, JSON-escaped
    with pytest.raises(ValueError, match="unknown tools"):
        RolloutConfig(disabled_tools=("teleport",))


def test_the_grammar_offers_exactly_the_names_of_the_twins_objects() -> None:
    backend = GrammarBackend([REASON + "<answer>[3]</answer>"])
    RolloutEngine(backend, RolloutConfig(prompt="v2")).run(scene(), "q")
    [rule] = [line for line in backend.requests[0].extra["grammar"].splitlines() if line.startswith("name ::=")]
    offered = set(re.findall(r'\\"([^"\\]+)\\"', rule))  # each alternative is the JSON string, escaped
    assert {"cup", "cups", "mug", "table", "tables"} <= offered
    assert "chair" not in offered and "dog" not in offered
