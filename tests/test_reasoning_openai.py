"""The OpenAI-compatible backend against a stub HTTP server on 127.0.0.1 (started per test in a thread)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fastreasonseg.errors import FrsError
from fastreasonseg.reasoning.backends.base import GenerationRequest
from fastreasonseg.reasoning.backends.openai import CHATML_TEMPLATE, OpenAIBackend, OpenAIBackendConfig, infer_stop
from fastreasonseg.reasoning.engine import RolloutEngine
from fastreasonseg.reasoning.loader import ReasonerConfig, load_reasoner, resolve_spec
from fastreasonseg.reasoning.protocol import results_block
from fastreasonseg.twin import DigitalTwin, Frame, Source, make_object
from fastreasonseg.twin.tools import run_plan

PLAN = [{"tool": "depth_order", "args": {"ids": [3, 8]}}]

Reply = tuple[int, dict | str, dict]  # status, JSON body (or raw text), headers


class Stub:
    """A scripted OpenAI-style server: ``respond(path, body)`` gives each reply; records requests."""

    def __init__(self, respond: Callable[[str, dict], Reply]):
        self.respond = respond
        self.requests: list[tuple[str, dict, dict]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with stub.lock:
                    stub.requests.append((self.path, body, dict(self.headers)))
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    status, payload, headers = stub.respond(self.path, body)
                finally:
                    with stub.lock:
                        stub.in_flight -= 1
                data = payload if isinstance(payload, str) else json.dumps(payload)
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data.encode())))
                    self.end_headers()
                    self.wfile.write(data.encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_factory():
    stubs: list[Stub] = []

    def make(respond: Callable[[str, dict], Reply]) -> Stub:
        stubs.append(Stub(respond))
        return stubs[-1]

    yield make
    for stub in stubs:
        stub.close()


def chat_reply(content: str, finish: str = "stop", stop_reason=None, usage=None) -> Reply:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
    if stop_reason is not None:
        choice["stop_reason"] = stop_reason
    return 200, {"choices": [choice], "usage": usage or {"prompt_tokens": 50, "completion_tokens": 7}}, {}


def backend_for(stub: Stub, **kwargs) -> OpenAIBackend:
    backend = OpenAIBackend(OpenAIBackendConfig(model="teacher", base_url=stub.url, **kwargs))
    backend.sleeps = []
    backend._sleep = backend.sleeps.append  # record backoff delays instead of waiting
    return backend


def scene() -> DigitalTwin:
    objects = (make_object(3, "cup", 0.9, [10, 10, 30, 30], depth=(0.2, 0.01)),
               make_object(8, "cup", 0.8, [50, 10, 70, 30], depth=(0.6, 0.01)))
    return DigitalTwin(source=Source(kind="image", width=100, height=50), frames=(Frame(0, 0.0, objects),))


def simple_request(prefix: str = "", **kwargs) -> GenerationRequest:
    return GenerationRequest(messages=[{"role": "user", "content": "hi"}], assistant_prefix=prefix,
                             stop=("</plan>", "</answer>"), max_new_tokens=32, **kwargs)


def test_rollout_through_the_endpoint_continues_the_assistant_turn(stub_factory) -> None:
    def respond(path: str, body: dict) -> Reply:
        if body["messages"][-1]["role"] != "assistant":
            # Server stripped the stop string and says nothing about which one: the backend infers </plan>.
            return chat_reply('<reason>two cups</reason>\n<plan>[{"tool": "depth_order", "args": {"ids": [3, 8]}}]',
                              usage={"prompt_tokens": 80, "completion_tokens": 20,
                                     "prompt_tokens_details": {"cached_tokens": 64}})
        return chat_reply("<answer>[3]", stop_reason="</answer>")  # vLLM names the matched stop

    stub = stub_factory(respond)
    twin = scene()
    result = RolloutEngine(backend_for(stub)).run(twin, "the nearer cup")
    assert result.answer_ids == [3] and result.failures == []
    assert result.rounds[0].results == run_plan(twin, PLAN)
    (path1, first, _), (path2, second, _) = stub.requests
    assert path1 == path2 == "/v1/chat/completions"
    assert "continue_final_message" not in first and first["stop"] == ["</plan>", "</answer>"]
    assert second["continue_final_message"] is True and second["add_generation_prompt"] is False
    assert second["messages"][-1]["content"].endswith("</plan>" + results_block(run_plan(twin, PLAN)))
    assert second["messages"][:-1] == first["messages"]
    assert first["temperature"] == 0.0 and first["model"] == "teacher"
    assert result.cached_tokens == 64 and result.new_tokens == 27


def test_retries_with_exponential_backoff_then_succeeds(stub_factory) -> None:
    replies = [(503, {"error": "busy"}, {}), (502, "bad gateway", {}), chat_reply("<answer>[3]</answer>")]
    stub = stub_factory(lambda path, body: replies.pop(0))
    backend = backend_for(stub, backoff_s=0.5)
    generation = backend.complete(simple_request())
    assert generation.stop_reason == "stop" and generation.text == "<answer>[3]</answer>"
    assert len(stub.requests) == 3 and backend.sleeps == [0.5, 1.0]


def test_retry_after_header_is_honoured(stub_factory) -> None:
    replies = [(429, {"error": "slow down"}, {"Retry-After": "3"}), chat_reply("<answer>[3]")]
    stub = stub_factory(lambda path, body: replies.pop(0))
    backend = backend_for(stub)
    assert backend.complete(simple_request()).text == "<answer>[3]</answer>"
    assert backend.sleeps == [3.0]


def test_client_errors_are_not_retried_and_become_error_generations(stub_factory) -> None:
    stub = stub_factory(lambda path, body: (400, {"error": {"message": "context too long"}}, {}))
    backend = backend_for(stub)
    generation = backend.complete(simple_request())
    assert generation.stop_reason == "error" and "HTTP 400" in generation.error and "context too long" in generation.error
    assert len(stub.requests) == 1
    result = RolloutEngine(backend).run(scene(), "q")
    assert [f.code for f in result.failures if f.kind == "runtime"] == ["backend_error"]


def test_timeouts_are_retried_then_reported(stub_factory) -> None:
    def slow(path: str, body: dict) -> Reply:
        time.sleep(0.5)
        return chat_reply("<answer>[3]")

    stub = stub_factory(slow)
    backend = backend_for(stub, timeout_s=0.05, max_retries=1)
    generation = backend.complete(simple_request())
    assert generation.stop_reason == "error" and "timed out" in generation.error and "2 attempts" in generation.error


def test_unreachable_server_is_an_error_generation() -> None:
    backend = OpenAIBackend(OpenAIBackendConfig(model="m", base_url="http://127.0.0.1:9/v1", max_retries=0))
    generation = backend.complete(simple_request())
    assert generation.stop_reason == "error" and "cannot reach" in generation.error


@pytest.mark.parametrize("payload", [{"choices": []}, {"nope": 1}, "not json"])
def test_malformed_responses_are_error_generations(stub_factory, payload) -> None:
    stub = stub_factory(lambda path, body: (200, payload, {}))
    generation = backend_for(stub).complete(simple_request())
    assert generation.stop_reason == "error"


def test_concurrency_is_bounded(stub_factory) -> None:
    def respond(path: str, body: dict) -> Reply:
        time.sleep(0.05)  # keep requests in flight long enough to overlap
        return chat_reply(body["messages"][0]["content"] + "<answer>[1]")

    stub = stub_factory(respond)
    backend = backend_for(stub, concurrency=2)
    requests = [GenerationRequest(messages=[{"role": "user", "content": f"q{i}"}], stop=("</answer>",))
                for i in range(6)]
    generations = backend.complete_many(requests)
    assert [g.text for g in generations] == [f"q{i}<answer>[1]</answer>" for i in range(6)]  # order kept
    assert stub.max_in_flight == 2


def test_completions_mode_renders_the_chat_client_side(stub_factory) -> None:
    stub = stub_factory(lambda path, body: (200, {"choices": [{"text": "<answer>[8]", "finish_reason": "stop"}]}, {}))
    backend = backend_for(stub, mode="completions")
    generation = backend.complete(simple_request(prefix="<reason>r</reason>\n"))
    path, body, _ = stub.requests[0]
    assert path == "/v1/completions"
    assert body["prompt"] == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<reason>r</reason>\n"
    assert generation.text == "<answer>[8]</answer>"
    assert CHATML_TEMPLATE  # the default template is ChatML


def test_api_key_comes_from_the_environment(stub_factory, monkeypatch) -> None:
    stub = stub_factory(lambda path, body: chat_reply("<answer>[3]"))
    monkeypatch.setenv("FRS_TEST_KEY", "sk-test")
    backend_for(stub, api_key_env="FRS_TEST_KEY").complete(simple_request())
    headers = {k.lower(): v for k, v in stub.requests[0][2].items()}
    assert headers["authorization"] == "Bearer sk-test"


def test_length_and_eos_finish_reasons(stub_factory) -> None:
    replies = [chat_reply("<reason>and so on", finish="length"), chat_reply("plain text, no tags")]
    stub = stub_factory(lambda path, body: replies.pop(0))
    backend = backend_for(stub)
    assert backend.complete(simple_request()).stop_reason == "length"
    eos = backend.complete(simple_request())
    assert eos.stop_reason == "eos" and eos.text == "plain text, no tags"


@pytest.mark.parametrize(("text", "stop"), [
    ("<reason>r</reason>\n<plan>[1", "</plan>"),
    ("<reason>r</reason>\n<plan>[]</plan>\n<results>[]</results>\n<answer>[3]", "</answer>"),
    ("<reason>r</reason>", None),
])
def test_infer_stop(text: str, stop: str | None) -> None:
    assert infer_stop(text, ("</plan>", "</answer>")) == stop


def test_spec_strings_and_loader(stub_factory, tmp_path) -> None:
    resolved = resolve_spec("openai:Qwen/Qwen3-8B@http://localhost:8000/v1")
    assert (resolved.kind, resolved.target, resolved.base_url, resolved.mode) == \
        ("openai", "Qwen/Qwen3-8B", "http://localhost:8000/v1", "continue")
    assert resolve_spec("openai-completions:m@https://h/v1").mode == "completions"
    for bad in ("openai:model", "openai:@http://x", "openai:m@ftp://x"):
        with pytest.raises(FrsError, match="expected openai:MODEL@"):
            resolve_spec(bad)
    stub = stub_factory(lambda path, body: chat_reply("<answer>[3]"))
    backend = load_reasoner(ReasonerConfig(spec=f"openai:teacher@{stub.url}"))
    assert isinstance(backend, OpenAIBackend) and backend.supports_batching
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(FrsError, match="remote endpoint"):
        load_reasoner(ReasonerConfig(spec=f"openai:teacher@{stub.url}", adapter=str(tmp_path)))
    with pytest.raises(FrsError, match="cannot load"):
        load_reasoner(ReasonerConfig(spec=f"openai:teacher@{stub.url}", backend="llamacpp"))


@pytest.mark.parametrize("kwargs", [{"model": ""}, {"model": "m", "base_url": "localhost:8000"},
                                    {"model": "m", "mode": "stream"}, {"model": "m", "concurrency": 0}])
def test_config_validation(kwargs) -> None:
    with pytest.raises(ValueError):
        OpenAIBackendConfig(**kwargs)
