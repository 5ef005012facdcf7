"""The rollout parser: every failure code, the canonical layout round trip, results spans for SFT, totality."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastreasonseg.reasoning.protocol import (
    FAILURE_CODES,
    build_rollout,
    format_results,
    parse_answer,
    parse_rollout,
    results_block,
    results_spans,
)
from fastreasonseg.twin import DigitalTwin, Frame, Source, make_object
from fastreasonseg.twin.tools import run_plan


def scene() -> DigitalTwin:
    objects = (
        make_object(3, "cup", 0.9, [10, 10, 30, 30], depth=(0.2, 0.01)),
        make_object(8, "tasse à café", 0.8, [50, 10, 70, 30], depth=(0.6, 0.01)),
    )
    return DigitalTwin(source=Source(kind="image", width=100, height=50), frames=(Frame(0, 0.0, objects),))


PLAN = [{"tool": "depth_order", "args": {"ids": [3, 8]}}]


def good_rollout(twin: DigitalTwin | None = None) -> str:
    twin = twin or scene()
    return build_rollout("two cups; compare depth", [(PLAN, run_plan(twin, PLAN))], [3])


R = "<reason>r</reason>\n"
A = "<answer>[3]</answer>"
P = '<plan>[{"tool": "depth_order", "args": {"ids": [3, 8]}}]</plan>'
RES = "\n<results>[]</results>\n"

# (rollout text, failure codes expected (exactly, in any order), format_ok, answer_ids)
CASES = [
    (R + A, set(), True, [3]),
    ("  " + R + A + "\n", set(), True, [3]),
    (R + P + RES + A, set(), True, [3]),
    (A, {"missing_reason"}, False, [3]),
    (R, {"missing_answer"}, False, None),
    ("", {"missing_reason", "missing_answer"}, False, None),
    (R + R + A, {"duplicate_tag"}, False, [3]),
    (R + A + "<answer>[4]</answer>", {"duplicate_tag"}, False, [3]),
    (A + R, {"disordered_tags"}, False, [3]),
    (R + RES + A, {"disordered_tags"}, False, [3]),
    (P + RES + R + A, {"disordered_tags"}, False, [3]),
    (R + P + "\n" + A, {"missing_results"}, False, [3]),
    (R + "<answer>[3]", {"unclosed_tag", "missing_answer"}, False, None),
    (R + "</plan>" + A, {"stray_close_tag"}, False, [3]),
    ("<reason>r<answer>[3]</answer>", {"nested_tag", "stray_close_tag", "unclosed_tag", "missing_reason",
                                       "missing_answer"}, False, None),
    ("Sure! " + R + A, {"text_outside_tags"}, False, [3]),
    (R + A + " done", {"trailing_text"}, False, [3]),
    (R + "<plan>[{]</plan>" + RES + A, {"invalid_plan_json"}, True, [3]),
    (R + '<plan>{"a": 1}</plan>' + RES + A, {"invalid_call"}, True, [3]),
    (R + '<plan>"depth_order"</plan>' + RES + A, {"invalid_plan_json"}, True, [3]),
    (R + '<plan>{"tool": "count", "args": {"label": "cup"}}</plan>' + RES + A, {"invalid_call"}, True, [3]),
    (R + "<plan>[3]</plan>" + RES + A, {"invalid_call"}, True, [3]),
    (R + '<plan>[{"tool": "count", "args": [1]}]</plan>' + RES + A, {"invalid_call"}, True, [3]),
    (R + '<plan>[{"tool": "rm_rf", "args": {}}]</plan>' + RES + A, {"unknown_tool"}, True, [3]),
    (R + P + "\n<results>[oops</results>\n" + A, {"invalid_results_json"}, True, [3]),
    (R + '<answer>["3"]</answer>', {"invalid_answer"}, True, None),
    (R + "<answer>[1.5]</answer>", {"invalid_answer"}, True, None),
    (R + "<answer>[true]</answer>", {"invalid_answer"}, True, None),
    (R + "<answer>cup 3</answer>", {"invalid_answer"}, True, None),
    (R + "<answer>3</answer>", {"invalid_answer"}, True, [3]),
    (R + "<answer>[]</answer>", {"empty_answer"}, True, []),
    (R + "<answer>[3, 8, 3]</answer>", {"duplicate_ids"}, True, [3, 8]),
    (R + "The answer is [3].", {"missing_answer", "text_outside_tags", "answer_outside_tags"}, False, None),
]


@pytest.mark.parametrize(("text", "codes", "format_ok", "answer"), CASES)
def test_failure_table(text: str, codes: set[str], format_ok: bool, answer: list[int] | None) -> None:
    parsed = parse_rollout(text)
    assert set(parsed.codes) == codes
    assert parsed.format_ok is format_ok
    assert parsed.answer_ids == answer
    assert all(code in FAILURE_CODES for code in parsed.codes)


def test_every_parser_failure_code_is_exercised() -> None:
    parser_codes = {c for c, (kind, _) in FAILURE_CODES.items() if kind != "runtime"}
    covered = set().union(*(codes for _, codes, _, _ in CASES)) | {"tool_error", "results_mismatch", "unknown_ids"}
    assert parser_codes == covered


def test_good_rollout_against_twin_has_no_failures() -> None:
    twin = scene()
    parsed = parse_rollout(good_rollout(twin), twin)
    assert parsed.ok and parsed.format_ok
    assert parsed.reason == "two cups; compare depth"
    assert parsed.plans == [PLAN]
    assert parsed.results == [json.loads(format_results(run_plan(twin, PLAN)))]
    assert parsed.answer_ids == [3]


@pytest.mark.parametrize(("mutate", "code"), [
    (lambda t: t.replace('"ids": [3, 8]', '"ids": [3, 99]'), "tool_error"),
    (lambda t: t.replace("0.2", "0.3"), "results_mismatch"),
    (lambda t: t.replace("<answer>[3]", "<answer>[3, 42]"), "unknown_ids"),
])
def test_checks_against_the_twin(mutate, code: str) -> None:
    twin = scene()
    parsed = parse_rollout(mutate(good_rollout(twin)), twin)
    assert code in parsed.codes
    assert parsed.format_ok  # content problems do not break the format reward


def test_format_results_is_the_contract_json() -> None:
    results = run_plan(scene(), [{"tool": "filter_label", "args": {"label": "tasse à café"}}])
    assert format_results(results) == json.dumps(results, separators=(",", ":"), ensure_ascii=False)
    assert "à" in format_results(results)
    assert results_block(results) == "\n<results>" + format_results(results) + "</results>\n"


def test_build_rollout_layout_matches_the_contract() -> None:
    text = good_rollout()
    lines = text.split("\n")
    assert lines[0].startswith("<reason>") and lines[0].endswith("</reason>")
    assert lines[1].startswith("<plan>") and lines[2].startswith("<results>") and lines[3] == "<answer>[3]</answer>"


def test_results_spans_cover_exactly_the_inserted_text() -> None:
    twin = scene()
    calls2 = [{"tool": "count", "args": {"label": "cup"}}]
    text = build_rollout("why", [(PLAN, run_plan(twin, PLAN)), (calls2, run_plan(twin, calls2))], [3])
    spans = results_spans(text)
    assert [text[a:b] for a, b in spans] == [results_block(run_plan(twin, PLAN)), results_block(run_plan(twin, calls2))]
    generated = "".join(text[b:a] for (_, b), (a, _) in zip([(0, 0), *spans], [*spans, (len(text), 0)], strict=True))
    assert "<results>" not in generated and generated.count("<plan>") == 2 and generated.endswith("<answer>[3]</answer>")


def test_results_spans_include_self_written_results() -> None:
    text = R + "<results>[1]</results>\n" + A
    assert [text[a:b] for a, b in results_spans(text)] == ["<results>[1]</results>\n"]
    assert results_spans(R + A) == []
    assert results_spans(R + "<results>[1]") == []


@pytest.mark.parametrize("text", ["[1, 2]", "[1,1]", " [7] "])
def test_parse_answer_accepts_json_id_lists(text: str) -> None:
    ids, _ = parse_answer(text)
    assert ids == list(dict.fromkeys(json.loads(text)))


@pytest.mark.parametrize("value", [None, 3, b"<reason>", ["<reason>x</reason>"]])
def test_non_string_input_is_a_failure_not_an_exception(value) -> None:
    parsed = parse_rollout(value)
    assert not parsed.format_ok and parsed.answer_ids is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["<reason>", "</reason>", "<plan>", "</plan>", "<results>", "</results>", "<answer>",
                                 "</answer>", "[3]", "[{", '{"tool": "count", "args": {"label": "cup"}}', "]", "x", "\n",
                                 "[", "\"", "<answer>[3]</answer>"]), max_size=30))
def test_parser_is_total(parts: list[str]) -> None:
    text = "".join(parts)
    parsed = parse_rollout(text, scene())
    assert isinstance(parsed.format_ok, bool)
    assert all(code in FAILURE_CODES for code in parsed.codes)
    for start, end in results_spans(text):
        assert 0 <= start < end <= len(text)


def test_deeply_nested_json_does_not_crash() -> None:
    text = R + "<plan>" + "[" * 100_000 + "</plan>" + RES + "<answer>" + "[" * 100_000 + "</answer>"
    parsed = parse_rollout(text)
    assert {"invalid_plan_json", "invalid_answer"} <= set(parsed.codes)
