"""Rewards and judges on hand-made completions, well-formed and malformed."""

from __future__ import annotations

import json
import pickle
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from fastreasonseg.distill.judges import (
    LLMJudge,
    OfflineJudge,
    chain_facts,
    multiset_f1,
    parse_judge_score,
    set_agreement,
)
from fastreasonseg.distill.rewards import AccuracyReward, ReasoningReward, completion_text, format_reward
from fastreasonseg.distill.testing import tiny_items
from fastreasonseg.reasoning.backends.base import Generation, GenerationRequest, ReasonerBackend

GOOD_TOOL = tiny_items()[0]["teacher"]
GOOD_DIRECT = "<reason>A knife cuts bread: id 1.</reason>\n<answer>[1]</answer>"

FORMAT_CASES = [
    (GOOD_TOOL, 0.5),
    (GOOD_DIRECT, 0.5),
    ("<reason>r</reason>\n<answer>[]</answer>", 0.5),             # empty answer: a content problem, format is fine
    ("<reason>r</reason>\n<answer>cup</answer>", 0.5),            # unparseable ids: content, not format
    ("<answer>[1]</answer>\n<reason>r</reason>", -0.5),           # disordered
    ("<reason>r</reason>", -0.5),                                 # no answer
    ("<answer>[1]</answer>", -0.5),                               # no reason
    ("<reason>r</reason>\n<answer>[1]", -0.5),                    # unclosed
    ("<reason>r</reason>\nso the answer is\n<answer>[1]</answer>", -0.5),  # text outside tags
    ('<reason>r</reason>\n<plan>[]</plan>\n<answer>[1]</answer>', -0.5),  # plan without results
    ("<reason>r</reason>\n<answer>[1]</answer> done", -0.5),      # trailing text
    ("", -0.5),
    ("[1]", -0.5),
]


@pytest.mark.parametrize(("text", "reward"), FORMAT_CASES)
def test_format_reward(text, reward):
    assert format_reward([text]) == [reward]


def test_format_reward_accepts_chat_completions_and_garbage_types():
    chat = [[{"role": "assistant", "content": GOOD_DIRECT}], [{"role": "assistant", "content": "nope"}], None, 42]
    assert format_reward(chat) == [0.5, -0.5, -0.5, -0.5]


@pytest.mark.parametrize(("completion", "text"), [
    ("abc", "abc"),
    ([{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}], "ab"),
    ([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "y"),
    ({"role": "assistant", "content": None}, ""),
    (None, ""),
])
def test_completion_text(completion, text):
    assert completion_text(completion) == text


def _columns(item, n):
    return {key: [item[key]] * n for key in ("id", "twin", "answer_ids", "query", "teacher", "category", "level")}


ACCURACY_CASES = [
    ("<reason>r</reason>\n<answer>[3]</answer>", 1.0, 1.0),
    ("<reason>r</reason>\n<answer>[4]</answer>", 0.0, 0.0),
    ("<reason>r</reason>\n<answer>[3, 4]</answer>", 1.0, 225 / 420),     # IoU 0.536 > 0.5
    ("<reason>r</reason>\n<answer>[3, 2]</answer>", 0.0, 225 / (225 + 700)),  # bread is large: IoU 0.24
    ("<reason>r</reason>\n<answer>[99]</answer>", 0.0, 0.0),            # id not in the twin
    ("<reason>r</reason>\n<answer>cup 3</answer>", 0.0, 0.0),           # unparseable answer
    ("the answer is [3]", 0.0, 0.0),                                    # answer outside tags is not salvaged
    ("", 0.0, 0.0),
]


@pytest.mark.parametrize(("text", "binary", "iou"), ACCURACY_CASES)
def test_accuracy_reward(text, binary, iou):
    item = tiny_items()[0]  # target: cup 3
    assert AccuracyReward()([text], **_columns(item, 1)) == [binary]
    assert AccuracyReward(continuous=True)([text], **_columns(item, 1))[0] == pytest.approx(iou)


def test_accuracy_threshold_and_twin_json_columns():
    item = tiny_items()[0]
    columns = _columns(item, 1)
    columns["twin_json"] = [json.dumps(columns.pop("twin")[0])]
    text = "<reason>r</reason>\n<answer>[3, 4]</answer>"
    assert AccuracyReward(threshold=0.5)([text], **columns) == [1.0]
    assert AccuracyReward(threshold=0.6)([text], **columns) == [0.0]


def test_accuracy_unscorable_row_is_none_not_a_crash():
    item = tiny_items()[0]
    columns = _columns(item, 2)
    columns["twin"] = [item["twin"], {"schema": "bogus"}]
    reward = AccuracyReward()
    assert reward(["<reason>r</reason>\n<answer>[3]</answer>"] * 2, **columns) == [1.0, None]
    assert reward.skipped == 1


def test_rewards_are_picklable():
    for reward in (AccuracyReward(0.5, continuous=True), ReasoningReward(OfflineJudge())):
        clone = pickle.loads(pickle.dumps(reward))
        assert clone.__name__ == reward.__name__


# --------------------------------------------------------------------------- judges


@pytest.mark.parametrize(("reply", "score"), [
    ("Same steps.\nSCORE: 0.8", 0.8),
    ("score = 1", 1.0),
    ("Score: 7/10", 0.7),
    ("Score: 8", 0.8),            # a 0-10 scale without denominator
    ("Score: 85", 0.85),          # a 0-100 scale
    ('{"score": 0.25}', 0.25),
    ("SCORE: 0.2 ... final SCORE: 0.9", 0.9),
    ("Score: -1", 0.0),           # clamped
    ("score: 3/0", None),
    ("looks fine to me", None),
    ("", None),
])
def test_parse_judge_score(reply, score):
    value = parse_judge_score(reply)
    assert value == (pytest.approx(score) if score is not None else None)


class ScriptedBackend(ReasonerBackend):
    """A backend that answers from a list and records the requests (stands in for the endpoint)."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests: list[GenerationRequest] = []

    def complete(self, request):
        self.requests.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


def test_llm_judge_scores_uses_paper_settings_and_survives_failures():
    backend = ScriptedBackend([
        Generation("Equivalent.\nSCORE: 0.9", "stop"),
        Generation("", "error", error="connection refused"),
        Generation("I cannot grade this.", "stop"),
        RuntimeError("socket closed"),
    ])
    judge = LLMJudge(backend)
    reward = ReasoningReward(judge)
    teacher = tiny_items()[0]["teacher"]
    scores = reward([GOOD_TOOL, GOOD_TOOL, GOOD_TOOL, GOOD_TOOL], teacher=[teacher] * 4, query=["q"] * 4)
    assert scores == [pytest.approx(0.9), None, None, None]
    assert judge.stats.calls == 4 and judge.stats.failures == 3
    assert dict(judge.stats.errors) == {"backend_error": 1, "unparseable": 1, "exception": 1}
    request = backend.requests[0]
    assert (request.temperature, request.max_new_tokens) == (0.3, 512)
    assert "TEACHER CHAIN" in request.messages[-1]["content"] and teacher in request.messages[-1]["content"]


def test_llm_judge_on_failure_zero_and_missing_teacher():
    judge = LLMJudge(ScriptedBackend([Generation("", "error", error="down")]), on_failure="zero")
    assert ReasoningReward(judge, on_failure="zero")([GOOD_TOOL, GOOD_TOOL], teacher=["t", ""], query=["q", "q"]) == [0.0, 0.0]
    assert judge.stats.errors["no_teacher"] == 1


class BatchingBackend(ScriptedBackend):
    """Overrides complete_many, as batching backends do; the judge then sends the whole batch at once."""

    def complete_many(self, requests):
        self.batches = [*getattr(self, "batches", []), len(requests)]
        return [self.complete(r) for r in requests]


def test_llm_judge_batches_through_complete_many():
    backend = BatchingBackend([Generation("SCORE: 1", "stop"), Generation("SCORE: 0.5", "stop")])
    judge = LLMJudge(backend)
    assert judge.score_many([GOOD_TOOL, GOOD_DIRECT, GOOD_TOOL], ["t", "t", ""], ["q"] * 3) == [1.0, 0.5, None]
    assert backend.batches == [2]  # the row without a teacher chain is not sent
    failing = BatchingBackend([RuntimeError("pool died")])
    judge = LLMJudge(failing)
    assert judge.score_many([GOOD_TOOL, GOOD_TOOL], ["t", "t"], ["q", "q"]) == [None, None]
    assert judge.stats.errors["exception"] == 2


class _ChatHandler(BaseHTTPRequestHandler):
    bodies: ClassVar[list] = []

    def do_POST(self):  # http.server's method name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _ChatHandler.bodies.append((self.path, body))
        reply = {"choices": [{"message": {"role": "assistant", "content": "Close.\nSCORE: 0.6"},
                              "finish_reason": "stop"}], "usage": {"prompt_tokens": 10, "completion_tokens": 5}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_llm_judge_over_local_openai_compatible_endpoint():
    server = HTTPServer(("127.0.0.1", 0), _ChatHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        judge = LLMJudge.from_endpoint(f"http://127.0.0.1:{server.server_port}/v1", "judge-model", max_retries=0)
        assert judge.score(GOOD_TOOL, GOOD_TOOL, "the cup closest to me") == pytest.approx(0.6)
    finally:
        server.shutdown()
        server.server_close()
    path, body = _ChatHandler.bodies[-1]
    assert path == "/v1/chat/completions"
    assert (body["temperature"], body["max_tokens"], body["model"]) == (0.3, 512, "judge-model")


def test_llm_judge_unreachable_endpoint_gives_none():
    judge = LLMJudge.from_endpoint("http://127.0.0.1:9/v1", "m", max_retries=0, timeout_s=2.0)
    assert judge.score(GOOD_TOOL, GOOD_TOOL, "q") is None
    assert judge.stats.errors["backend_error"] == 1


def test_chain_facts_reads_ids_and_tools():
    facts = chain_facts(GOOD_TOOL)
    assert facts.ids == {3, 4}
    assert facts.tools == ("depth_order",)
    assert facts.reason.startswith("The cups are 3 and 4")
    assert chain_facts("<reason>ids 2, 5 and #7</reason>\n<answer>[5]</answer>").ids == {2, 5, 7}
    assert chain_facts("garbage") == chain_facts("")


@pytest.mark.parametrize(("a", "b", "value"), [
    (set(), set(), 1.0), ({1}, {1}, 1.0), ({1, 2}, {2, 3}, 1 / 3), ({1}, set(), 0.0),
])
def test_set_agreement(a, b, value):
    assert set_agreement(a, b) == pytest.approx(value)


@pytest.mark.parametrize(("a", "b", "value"), [
    ((), (), 1.0), (("x",), ("x",), 1.0), (("x", "x"), ("x",), 2 / 3), (("x",), ("y",), 0.0),
])
def test_multiset_f1(a, b, value):
    assert multiset_f1(a, b) == pytest.approx(value)


@pytest.fixture(scope="module")
def offline_judge():
    return OfflineJudge()


def test_offline_judge_orders_chains_by_agreement(offline_judge):
    teacher = GOOD_TOOL
    same = offline_judge.score(teacher, teacher)
    paraphrase = offline_judge.score(teacher.replace("I compare depth.", "Comparing how deep they are."), teacher)
    no_tool = offline_judge.score("<reason>The cups are 3 and 4.</reason>\n<answer>[3]</answer>", teacher)
    unrelated = offline_judge.score("<reason>Bananas are yellow fruit.</reason>\n<answer>[2]</answer>", teacher)
    malformed = offline_judge.score("I think [3]", teacher)
    assert same == pytest.approx(1.0, abs=1e-5)
    assert same > paraphrase > no_tool > unrelated
    assert 0.0 <= malformed < no_tool
    assert offline_judge.score(teacher, "") is None
    # Garbage earns nothing for "agreeing" with a tool-free teacher by citing nothing and calling no tool.
    assert offline_judge.score("blah blah", GOOD_DIRECT) == 0.0
    assert offline_judge.score("<reason>A knife cuts bread: id 1.</reason>", GOOD_DIRECT) == pytest.approx(0.5, abs=1e-5)


def test_offline_judge_weights_and_batching(offline_judge):
    ids_only = OfflineJudge(w_text=0, w_ids=1, w_tools=0)
    assert ids_only.score("<reason>id 3</reason>\n<answer>[3]</answer>", GOOD_TOOL) == pytest.approx(0.5)
    students = [GOOD_TOOL, GOOD_DIRECT]
    batched = offline_judge.score_many(students, [GOOD_TOOL] * 2, ["q"] * 2)
    assert batched == [pytest.approx(offline_judge.score(s, GOOD_TOOL)) for s in students]
    with pytest.raises(ValueError, match="weights"):
        OfflineJudge(w_text=0, w_ids=0, w_tools=0)
