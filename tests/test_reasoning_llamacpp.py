"""The llama.cpp backend on the embedded SmolLM2 GGUF: prompt parity with transformers, prefix reuse,
stop strings and grammar-constrained turns, and the PEFT-to-GGUF LoRA conversion against transformers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llama_cpp")

from fastreasonseg.reasoning.backends.base import GenerationRequest
from fastreasonseg.reasoning.backends.llamacpp import LlamaCppBackend, LlamaCppBackendConfig
from fastreasonseg.reasoning.engine import RolloutConfig, RolloutEngine
from fastreasonseg.reasoning.grammar import rollout_grammar
from fastreasonseg.reasoning.loader import ReasonerConfig, default_gguf_path, load_reasoner
from fastreasonseg.reasoning.prompt import PromptBuilder
from fastreasonseg.reasoning.protocol import build_rollout, parse_rollout
from fastreasonseg.twin import DigitalTwin, Frame, Source, make_object
from fastreasonseg.twin.tools import run_plan

pytestmark = pytest.mark.slow


def scene() -> DigitalTwin:
    objects = (make_object(3, "cup", 0.9, [10, 10, 30, 30], depth=(0.2, 0.01)),
               make_object(8, "cup", 0.8, [50, 10, 70, 30], depth=(0.6, 0.01)),
               make_object(12, "table", 0.7, [0, 30, 100, 50], depth=(0.5, 0.1)))
    return DigitalTwin(source=Source(kind="image", width=100, height=50), frames=(Frame(0, 0.0, objects),))


@pytest.fixture(scope="module")
def backend() -> LlamaCppBackend:
    return LlamaCppBackend(LlamaCppBackendConfig(model_path=str(default_gguf_path())))


@pytest.fixture(scope="module")
def hf_smollm2():
    """SmolLM2 through transformers from the same GGUF (slow: de-quantises the file)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = default_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype="float32")
    return model.eval(), tokenizer


def messages(query: str = "the nearer cup") -> list[dict]:
    return PromptBuilder(few_shot=False).messages_for(scene(), query)


def request(query: str = "the nearer cup", prefix: str = "", **kwargs) -> GenerationRequest:
    kwargs.setdefault("max_new_tokens", 8)
    return GenerationRequest(messages=messages(query), assistant_prefix=prefix, **kwargs)


def test_prompt_and_tokens_match_transformers(backend: LlamaCppBackend, hf_smollm2) -> None:
    _, tokenizer = hf_smollm2
    chat = messages()
    hf_text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert backend.render(chat) == hf_text
    assert backend.encode(hf_text) == tokenizer(hf_text, add_special_tokens=False)["input_ids"]


def test_prefix_reuse_gives_the_same_output_as_reencoding(backend: LlamaCppBackend) -> None:
    fresh = LlamaCppBackend(LlamaCppBackendConfig(model_path=str(default_gguf_path()), prefix_cache=False))
    backend.complete(request("the nearer cup"))
    cached = backend.complete(request("the far cup"))
    reencoded = fresh.complete(request("the far cup"))
    assert cached.cached_tokens > 0.8 * cached.prompt_tokens and reencoded.cached_tokens == 0
    assert cached.text == reencoded.text and cached.new_tokens == reencoded.new_tokens
    resumed = backend.complete(request("the far cup", prefix=cached.text))
    assert resumed.cached_tokens >= cached.prompt_tokens


def test_grammar_forces_a_plan_and_generation_stops_at_the_stop_string(backend: LlamaCppBackend) -> None:
    grammar = 'root ::= "<reason>" [a-z ]{1,12} "</reason>\\n<plan>[]</plan>\\n<answer>[3]</answer>"'
    generation = backend.complete(request(stop=("</plan>", "</answer>"), max_new_tokens=64,
                                          extra={"grammar": grammar}))
    assert generation.stop_reason == "stop"
    assert generation.text.startswith("<reason>") and generation.text.endswith("</reason>\n<plan>[]</plan>")


def test_invalid_grammar_is_an_error_generation(backend: LlamaCppBackend) -> None:
    generation = backend.complete(request(extra={"grammar": "root ::= ("}))
    assert generation.stop_reason == "error" and "grammar" in generation.error


def accepts(backend: LlamaCppBackend, grammar: str, text: str) -> bool:
    """Feed ``text`` token by token through the grammar sampler; False at the first rejected token."""
    import llama_cpp

    sampler = backend._grammar_sampler(grammar)
    for token in backend.llm.tokenize(text.encode(), add_bos=False, special=False):
        if not backend._allowed(sampler, token, 1.0):
            return False
        llama_cpp.llama_sampler_accept(sampler, token)
    return True


@pytest.mark.parametrize(("state", "text", "ok"), [
    ("start", build_rollout("two cups", [], [3]), True),
    ("start", build_rollout("near", [], [3, 12]), True),
    ("start", '<reason>a</reason>\n<plan>[{"tool": "depth_order", "args": {"ids": [3, 8]}}]</plan>', True),
    ("start", '<reason>a</reason>\n<plan>[{"tool": "extreme", "args": {"by": "area", "order": "max"}}]</plan>', True),
    ("start", '<reason>a</reason>\n<plan>[{"tool": "count", "args": {"label": "cup"}}, '
              '{"tool": "relation", "args": {"a": 3, "b": 12}}]</plan>', True),
    ("after_results", "<answer>[8]</answer>", True),
    ("after_results", '<plan>[{"tool": "attributes", "args": {"ids": [12]}}]</plan>', True),
    # objects by name where a tool takes id / ids; the answer stays ids
    ("start", '<reason>a</reason>\n<plan>[{"tool": "nearest_to", "args": {"id": "laptop", "ids": "cups"}}]</plan>', True),
    ("after_results", '<answer>["cup"]</answer>', False),
    ("answer_only", "<answer>[8]</answer>", True),
    ("answer_only", '<plan>[{"tool": "attributes", "args": {"ids": [12]}}]</plan>', False),
    ("start_answer_only", build_rollout("two cups", [], [3]), True),  # tools off: reason, then answer
    ("start_answer_only", '<reason>a</reason>\n<plan>[{"tool": "count", "args": {"label": "cup"}}]</plan>', False),
    ("start", build_rollout("x", [], [4]), False),  # 4 is not in the twin
    ("start", '<reason>a</reason>\n<plan>[{"tool": "teleport", "args": {}}]</plan>', False),
    ("start", '<reason>a</reason>\n<plan>[{"tool": "extreme", "args": {"by": "color", "order": "max"}}]</plan>', False),
    ("start", "<answer>[3]</answer>", False),  # reason first
    ("start", "<reason>" + "a" * 301 + "</reason>", False),  # reason_chars cap
])
def test_grammar_accepts_exactly_the_protocol(backend: LlamaCppBackend, state: str, text: str, ok: bool) -> None:
    grammar = rollout_grammar(scene().track_ids, video=False, state=state)
    assert accepts(backend, grammar, text) is ok


def test_grammar_with_the_twins_names_forbids_names_that_resolve_to_nothing(backend: LlamaCppBackend) -> None:
    from fastreasonseg.twin.vocab import label_names

    names = sorted({n for label in ("cup", "laptop") for n in label_names(label)})
    grammar = rollout_grammar([3, 8, 12], video=False, state="after_results", names=names)
    plan = '<plan>[{"tool": "nearest_to", "args": {"id": %s, "ids": %s}}]</plan>'
    assert accepts(backend, grammar, plan % ('"laptop"', '"mugs"'))  # a synonym's plural is a name of the cups
    assert accepts(backend, grammar, plan % ("12", "[3, 8]"))
    assert not accepts(backend, grammar, plan % ('"laptop"', '"vassie"'))
    assert not accepts(backend, grammar, plan % ('"thing"', "[3]"))


def test_video_grammar_has_the_video_tools(backend: LlamaCppBackend) -> None:
    grammar = rollout_grammar([1, 2], video=True, state="after_results")
    assert accepts(backend, grammar, '<plan>[{"tool": "motion", "args": {"ids": [1]}}]</plan>')
    assert accepts(backend, grammar, '<plan>[{"tool": "present_at", "args": {"time": 1.5}}]</plan>')
    # generator v5's arguments: on videos only, and only their values
    assert accepts(backend, grammar, '<plan>[{"tool": "motion", "args": {"ids": [1], "direction": "toward camera"}}]</plan>')
    assert accepts(backend, grammar, '<plan>[{"tool": "extreme", "args": {"by": "speed", "order": "min"}}]</plan>')
    assert accepts(backend, grammar, '<plan>[{"tool": "track_info", "args": {"ids": [2], "only": "leaves"}}]</plan>')
    assert accepts(backend, grammar, '<plan>[{"tool": "event_order", "args": {"ids": [1, 2], "event": "last_seen", '
                                     '"order": "last"}}]</plan>')
    assert not accepts(backend, grammar, '<plan>[{"tool": "motion", "args": {"ids": [1], "direction": "north"}}]</plan>')
    assert not accepts(backend, rollout_grammar([1, 2], video=False, state="after_results"),
                       '<plan>[{"tool": "extreme", "args": {"by": "speed", "order": "min"}}]</plan>')
    assert not accepts(backend, rollout_grammar([1, 2], video=False, state="after_results"),
                       '<plan>[{"tool": "motion", "args": {"ids": [1]}}]</plan>')


def test_constrained_rollout_on_the_embedded_model_is_well_formed(backend: LlamaCppBackend) -> None:
    twin = scene()
    engine = RolloutEngine(backend, RolloutConfig(max_new_tokens=120, reason_chars=60))
    result = engine.run(twin, "the cup nearest to the camera")
    assert result.format_ok, result.failures
    assert result.answer_ids and set(result.answer_ids) <= set(twin.track_ids)
    parsed = parse_rollout(result.text, twin)
    for index, calls in enumerate(parsed.plans):
        assert result.rounds[index].results == run_plan(twin, calls)


def test_rollout_timing_splits_the_wall_time_by_stage(backend: LlamaCppBackend) -> None:
    result = RolloutEngine(backend, RolloutConfig(max_new_tokens=120, reason_chars=60)).run(scene(), "the cup nearest to the camera")
    stages = {"prompt_s", "prefill_s", "decode_s", "grammar_s", "detokenize_s"}
    assert stages <= set(result.timing) and all(v >= 0 for v in result.timing.values())
    assert result.timing["decode_s"] > 0 and result.timing["prefill_s"] > 0
    assert sum(result.timing.values()) <= result.seconds  # parts of the wall time, never more
    assert ("tools_s" in result.timing) == bool(result.rounds)


def test_no_tools_rollout_reasons_then_answers_without_a_plan(backend: LlamaCppBackend) -> None:
    twin = scene()
    engine = RolloutEngine(backend, RolloutConfig(max_new_tokens=120, reason_chars=60, max_tool_rounds=0))
    result = engine.run(twin, "the cup nearest to the camera")
    assert result.format_ok, result.failures
    assert not result.rounds and "<plan>" not in result.text
    assert result.answer_ids and set(result.answer_ids) <= set(twin.track_ids)


def test_default_loader_picks_llamacpp(backend: LlamaCppBackend) -> None:
    loaded = load_reasoner(ReasonerConfig())
    assert isinstance(loaded, LlamaCppBackend) and loaded.name.startswith("llama.cpp:SmolLM2")


def test_lora_conversion_matches_transformers_with_peft(hf_smollm2, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    model, tokenizer = hf_smollm2
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"],
                        init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():  # a strong, deterministic adapter so its effect is far above quantisation noise
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn_like(param) * 0.05)
    peft_model.save_pretrained(tmp_path / "adapter")
    text = "<|im_start|>user\nWhich cup is nearer?<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        adapted = peft_model(torch.tensor([ids])).logits[0, -1].numpy()
        with peft_model.disable_adapter():
            base = peft_model(torch.tensor([ids])).logits[0, -1].numpy()
    peft_model.unload()  # give the shared fixture model back without the adapter

    def llama_logits(adapter: str | None) -> np.ndarray:
        llama = LlamaCppBackend(LlamaCppBackendConfig(model_path=str(default_gguf_path()), adapter=adapter))
        llama.llm.eval(ids)
        return np.ctypeslib.as_array(llama.llm._ctx.get_logits(), shape=(llama.llm.n_vocab(),)).copy()

    with_lora = llama_logits(str(tmp_path / "adapter"))
    without = llama_logits(None)
    def corr(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a, b)[0, 1])

    assert corr(with_lora, adapted) > 0.99 and corr(without, base) > 0.99
    # The sharp check: the change the adapter makes in llama.cpp is the change PEFT makes in transformers
    # (a wrong q/k row permutation or scale would decorrelate the two deltas).
    assert corr(with_lora - without, adapted - base) > 0.9
    assert np.abs(adapted - base).mean() > 0.05  # and the adapter does change the logits
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["r"] == 4


@pytest.mark.parametrize(("busy_fraction", "usable", "expected"), [
    (0.0, 2, 2),  # a quiet 2-core machine: both cores
    (0.5, 2, 1),  # one core busy (a training job): one thread
    (1.0, 2, 1),  # all busy: still one
    (0.0, 8, 4),  # never more than 4
])
def test_free_cores_counts_the_cores_not_busy_now(monkeypatch, busy_fraction, usable, expected) -> None:
    import fastreasonseg.reasoning.backends.llamacpp as module

    samples = iter([(1000, 2000), (1000 + int(1000 * (1 - busy_fraction)), 3000)])
    monkeypatch.setattr(module, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(module.os, "sched_getaffinity", lambda _pid: set(range(usable)))
    monkeypatch.setattr(module.os, "cpu_count", lambda: usable)
    assert module.free_cores(sample_s=0.0) == expected


def test_backend_threads_default_to_free_cores_and_explicit_threads_win(monkeypatch) -> None:
    import fastreasonseg.reasoning.backends.llamacpp as module

    monkeypatch.setattr(module, "free_cores", lambda: 2)
    auto = LlamaCppBackend(LlamaCppBackendConfig(model_path=str(default_gguf_path())))
    fixed = LlamaCppBackend(LlamaCppBackendConfig(model_path=str(default_gguf_path()), n_threads=1, n_threads_batch=1))
    assert auto.threads == (2, 2) and fixed.threads == (1, 1)
    assert auto.llm.n_threads == 2 and fixed.llm.n_threads == 1
    auto.close()
    fixed.close()
