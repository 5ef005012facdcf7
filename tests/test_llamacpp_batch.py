"""The llama.cpp backend's batched path (``complete_many``): which sequence serves which prompt, the
shared prefix encoded once, logits identical to a cold prefill, rollouts identical to one-by-one
decoding on the embedded SmolLM2 GGUF, chunks beyond ``n_seq_max``, and errors that stay per request."""

from __future__ import annotations

import numpy as np
import pytest

from fastreasonseg.reasoning.backends.llamacpp_kv import SharePlan, assign_sequences, share_prefix


@pytest.mark.parametrize(("cached", "prompts", "expected"), [
    ([[], [], []], [[1, 2, 3], [1, 2, 4]], [(0, 0), (1, 0)]),  # nothing cached: sequences in order
    ([[9, 9], [1, 2, 3, 4, 5]], [[1, 2, 3, 4, 5, 6, 7]], [(1, 5)]),  # the sequence holding the prefix
    # two rollouts resuming after </plan>: each finds its own earlier turn
    ([[1, 2, 3, 7, 7], [1, 2, 3, 8, 8]], [[1, 2, 3, 8, 8, 9, 9], [1, 2, 3, 7, 7, 9, 9]], [(1, 5), (0, 5)]),
    ([[1, 2, 3, 4, 5, 6], [1, 2], []], [[1, 2, 9, 9]], [(1, 2)]),  # equal matches: overwrite the shorter cache
    ([[1, 2, 3, 4]], [[1, 2, 3, 4]], [(0, 2)]),  # a fully cached prompt still feeds MIN_PREFILL tokens
])
def test_assign_sequences_reuses_the_longest_prefix(cached, prompts, expected) -> None:
    assert assign_sequences(cached, prompts) == expected


def test_assign_sequences_without_reuse_and_with_too_many_prompts() -> None:
    assert assign_sequences([[1, 2, 3]], [[1, 2, 3, 4]], reuse=False) == [(0, 0)]
    with pytest.raises(ValueError, match="3 prompts for 2 sequences"):
        assign_sequences([[], []], [[1], [2], [3]])


@pytest.mark.parametrize(("prompts", "cached", "expected"), [
    # a cold scene: the first prompt encodes what all share, the others copy their part of it
    ([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 7, 8], [1, 2, 9, 9]], [0, 0, 0], SharePlan(0, 4, {1: 4, 2: 2})),
    # the best-cached prompt leads; nobody copies more than leaves it MIN_PREFILL tokens
    ([[1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6, 8, 9], [1, 2, 3, 4, 5, 6, 7, 7]], [0, 5, 0],
     SharePlan(1, 6, {0: 5, 2: 6})),
    ([[1, 2, 3, 4], [1, 2, 3, 5]], [2, 2], SharePlan(0, 2, {})),  # own caches already hold the shared part
])
def test_share_prefix(prompts, cached, expected) -> None:
    assert share_prefix(prompts, cached) == expected


# ---------------------------------------------------------------------------- the embedded model
slow = pytest.mark.slow
QUERIES = ("the cup nearest to the camera", "the far cup", "the table", "the cup on the left")


def scene():
    from fastreasonseg.twin import DigitalTwin, Frame, Source, make_object

    objects = (make_object(3, "cup", 0.9, [10, 10, 30, 30], depth=(0.2, 0.01)),
               make_object(8, "cup", 0.8, [50, 10, 70, 30], depth=(0.6, 0.01)),
               make_object(12, "table", 0.7, [0, 30, 100, 50], depth=(0.5, 0.1)))
    return DigitalTwin(source=Source(kind="image", width=100, height=50), frames=(Frame(0, 0.0, objects),))


def load(**kwargs):
    pytest.importorskip("llama_cpp")
    from fastreasonseg.reasoning.backends.llamacpp import LlamaCppBackend, LlamaCppBackendConfig
    from fastreasonseg.reasoning.loader import default_gguf_path

    kwargs.setdefault("n_threads", 1)  # the same threads for every backend compared here
    kwargs.setdefault("n_threads_batch", 1)
    return LlamaCppBackend(LlamaCppBackendConfig(model_path=str(default_gguf_path()), **kwargs))


@pytest.fixture(scope="module")
def sequential():
    backend = load(n_seq_max=1)
    assert not backend.supports_batching  # one sequence: the engine runs queries one after another
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def batched():
    backend = load(n_seq_max=4)
    assert backend.supports_batching
    yield backend
    backend.close()


def request(query: str = "the far cup", prefix: str = "", **kwargs):
    from fastreasonseg.reasoning.backends.base import GenerationRequest
    from fastreasonseg.reasoning.prompt import PromptBuilder

    kwargs.setdefault("max_new_tokens", 6)
    return GenerationRequest(messages=PromptBuilder(few_shot=False).messages_for(scene(), query),
                             assistant_prefix=prefix, **kwargs)


@slow
def test_batched_rollouts_equal_one_by_one_and_resume_after_plan(sequential, batched) -> None:
    """Greedy rollouts under the grammar, with tool rounds: token for token what one-by-one decoding gives.

    Prefill is bit-identical by construction; decode steps of several sequences can differ from a
    lone sequence's by kernel rounding (see the llamacpp module docstring), which flips no token here.
    """
    from fastreasonseg.reasoning.engine import RolloutConfig, RolloutEngine

    config = RolloutConfig(max_new_tokens=80, reason_chars=40)
    twin = scene()
    one_by_one = RolloutEngine(sequential, config).run_many(twin, QUERIES)
    batched.clear_cache()
    calls = []
    complete_many = batched.complete_many

    def recording(requests):
        generations = complete_many(requests)
        calls.append(generations)
        return generations

    batched.complete_many = recording
    try:
        together = RolloutEngine(batched, config).run_many(twin, QUERIES)
    finally:
        del batched.complete_many
    assert [r.text for r in together] == [r.text for r in one_by_one]
    assert [r.answer_ids for r in together] == [r.answer_ids for r in one_by_one]
    assert [r.failures for r in together] == [r.failures for r in one_by_one]
    assert [r.prompt_tokens for r in together] == [r.prompt_tokens for r in one_by_one]

    resumed = [i for i, r in enumerate(together) if r.rounds]
    assert resumed, "no query paused at </plan>; pick queries that make the model call a tool"
    assert all("</results>" in together[i].text for i in resumed)
    first, second = calls[0], calls[1]
    assert len(first) == len(QUERIES) and len(second) == len(resumed)  # finished rollouts leave the batch
    # The twin was encoded once: the first query paid for it, the others copied it.
    assert first[0].cached_tokens == 0
    assert all(g.cached_tokens > 0.9 * g.prompt_tokens for g in first[1:])
    # Each resumed rollout found its own first turn: only the <results> block and what follows are new.
    for generation, index in zip(second, resumed, strict=True):
        assert generation.cached_tokens >= first[index].prompt_tokens
    stages = {"prompt_s", "prefill_s", "decode_s", "grammar_s", "detokenize_s"}
    for generations in calls:
        assert all(set(g.timing) == stages and g.timing["prefill_s"] > 0 for g in generations)
        assert len({g.timing["prefill_s"] for g in generations}) == 1  # lockstep: the batch's prefill
        assert all(sum(g.timing.values()) <= g.seconds for g in generations)


@slow
def test_shared_prefix_copies_give_the_logits_of_a_cold_prefill(batched) -> None:
    """The KV bookkeeping itself, bit for bit: trims, cross-stream copies and per-sequence prefill."""
    batched.complete_many([request(), request("the table")])  # gives the context its sequences
    kv = batched._kv
    prompts = [batched.encode(batched.render(request(q).messages)) for q in QUERIES[:3]]
    cold = []
    for prompt in prompts:
        kv.clear()
        cold.append(kv.prefill(0, prompt))
    kv.clear()
    kv.prefill(1, [5, 6, 7, 8])  # foreign content the copy must overwrite
    plan = share_prefix(prompts, [0, 0, 0])
    kv.prefill(plan.source, prompts[plan.source][:plan.end], logits=False)
    for index, keep in plan.copies.items():
        kv.copy(plan.source, index, keep)
    rows = [kv.prefill(s, prompt[len(kv.tokens[s]):]) for s, prompt in enumerate(prompts)]
    for row, reference in zip(rows, cold, strict=True):
        assert np.array_equal(row, reference)
    # A decode step does not depend on the other sequences in it ...
    tokens = [int(np.argmax(row)) for row in rows]
    with_second = kv.step([(0, [tokens[0]]), (1, [tokens[1]])])[0]
    kv.trim(0, len(prompts[0]))
    with_third = kv.step([(0, [tokens[0]]), (2, [tokens[2]])])[0]
    assert np.array_equal(with_second, with_third)
    # ... and differs from a lone sequence's step only by kernel rounding (a wrong cache gives several units).
    kv.trim(0, len(prompts[0]))
    alone = kv.step([(0, [tokens[0]])])[0]
    assert np.abs(alone - with_second).max() < 1.5
    assert kv.tokens[0] == [*prompts[0], tokens[0]]


@slow
def test_more_requests_than_sequences_run_in_chunks(sequential) -> None:
    small = load(n_seq_max=2)
    queries = [*QUERIES, "the cup on the right"]
    requests = [request(q) for q in queries]
    together = small.complete_many(requests)
    alone = [sequential.complete(r) for r in requests]
    assert small._kv.n_seq == 2
    assert [g.stop_reason for g in together] == [g.stop_reason for g in alone]
    assert [g.text for g in together] == [g.text for g in alone]
    assert all(g.new_tokens > 0 and g.cached_tokens > 0.9 * g.prompt_tokens for g in together[1:])
    small.close()


@slow
def test_bad_requests_fail_alone_and_a_failed_decode_is_an_error_not_an_exception(batched, monkeypatch) -> None:
    ok, too_long = request(), request(max_new_tokens=batched.config.n_ctx)
    bad_grammar = request(extra={"grammar": "root ::= ("})
    generations = batched.complete_many([ok, too_long, bad_grammar])
    assert generations[0].stop_reason != "error" and generations[0].text
    assert generations[1].stop_reason == "error" and "exceeds n_ctx 4096" in generations[1].error
    assert generations[2].stop_reason == "error" and "grammar" in generations[2].error

    def broken(pieces):
        raise RuntimeError("llama_decode returned -3")

    monkeypatch.setattr(batched._kv, "step", broken)
    failed = batched.complete_many([request(), request("the table")])
    assert all(g.stop_reason == "error" and "llama_decode returned -3" in g.error for g in failed)
    monkeypatch.undo()
    assert batched._kv.tokens == [[]] * batched._kv.n_seq  # an uncertain cache is dropped
    assert batched.complete(ok).text == generations[0].text


@slow
def test_one_request_after_a_batch_matches_a_fresh_backend(batched) -> None:
    batched.complete_many([request("the far cup"), request("the table"), request("the cup on the left")])
    llm = batched.llm
    assert llm.n_tokens == len(batched._kv.tokens[0])  # the Llama object's own sequence is not stale
    assert llm.input_ids[: llm.n_tokens].tolist() == batched._kv.tokens[0]
    llm.eval(batched.encode(" and"))  # so Llama.eval continues it, and complete takes that over
    after = batched.complete(request("the far cup"))
    fresh = load()
    reference = fresh.complete(request("the far cup"))
    fresh.close()
    assert after.text == reference.text and after.new_tokens == reference.new_tokens
    assert after.cached_tokens > 0.9 * after.prompt_tokens and reference.cached_tokens == 0


@slow
def test_seeded_sampling_follows_each_requests_seed(batched) -> None:
    same = request(max_new_tokens=8, temperature=0.9, seed=7)
    first, second = batched.complete_many([same, same])
    assert first.text == second.text and first.new_tokens == second.new_tokens


@slow
def test_the_lora_adapter_survives_the_batch_context() -> None:
    from fastreasonseg.reasoning.loader import DEFAULT_ADAPTER_DIR

    if not (DEFAULT_ADAPTER_DIR / "adapter_config.json").is_file():
        pytest.skip("no shipped adapter")
    adapted = load(adapter=str(DEFAULT_ADAPTER_DIR), n_seq_max=2)
    prompt = adapted.encode(adapted.render(request().messages))
    before = adapted._kv.prefill(0, prompt)
    assert adapted._grow() is None and adapted._kv.n_seq == 2
    after = adapted._kv.prefill(0, prompt)
    adapted.close()
    base = load(n_seq_max=1)
    plain = base._kv.prefill(0, prompt)
    base.close()
    assert np.array_equal(before, after)
    assert np.abs(plain - after).mean() > 0.05  # the adapter is really applied
