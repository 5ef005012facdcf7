"""The transformers backend on tiny random-initialised Llama and Qwen3 models saved and loaded through the real code.

A random model writes no tags, so the pause/resume test first teaches a tiny Llama one
rollout by overfitting it (a few hundred Adam steps on one sequence); the engine then runs
the real backend: it must stop at </plan>, get the tool results inserted, resume from the
cached prefix and finish with the memorised answer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from fastreasonseg.errors import FrsError  # noqa: E402
from fastreasonseg.reasoning.backends.base import GenerationRequest  # noqa: E402
from fastreasonseg.reasoning.backends.hf import HFBackend, HFBackendConfig  # noqa: E402
from fastreasonseg.reasoning.engine import RolloutConfig, RolloutEngine  # noqa: E402
from fastreasonseg.reasoning.loader import ReasonerConfig, load_reasoner  # noqa: E402
from fastreasonseg.reasoning.prompt import PromptBuilder  # noqa: E402
from fastreasonseg.reasoning.protocol import build_rollout, results_block  # noqa: E402
from fastreasonseg.twin import DigitalTwin, Frame, Source, make_object  # noqa: E402
from fastreasonseg.twin.tools import run_plan  # noqa: E402

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
PLAN = [{"tool": "depth_order", "args": {"ids": [3, 8]}}]


def scene() -> DigitalTwin:
    objects = (
        make_object(3, "cup", 0.9, [10, 10, 30, 30], depth=(0.2, 0.01)),
        make_object(8, "cup", 0.8, [50, 10, 70, 30], depth=(0.6, 0.01)),
    )
    return DigitalTwin(source=Source(kind="image", width=100, height=50), frames=(Frame(0, 0.0, objects),))


class ShortPrompt(PromptBuilder):
    """A short system prompt keeps the memorised sequence small."""

    def system(self, video: bool) -> str:
        return "Find the objects."


def expected_rollout(twin: DigitalTwin) -> str:
    return build_rollout("two cups, compare depth", [(PLAN, run_plan(twin, PLAN))], [3])


def build_tokenizer(corpus: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=["<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|im_end|>")
    fast.chat_template = CHATML
    return fast


def model_config(kind: str, vocab_size: int, eos: int):
    common = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, eos_token_id=eos,
                  pad_token_id=eos, tie_word_embeddings=False)
    if kind == "llama":
        return transformers.LlamaConfig(**common)
    return transformers.Qwen3Config(head_dim=16, **common)


def prompt_text(tokenizer, twin: DigitalTwin, query: str) -> str:
    engine_messages = ShortPrompt(few_shot=False).messages_for(twin, query)
    return tokenizer.apply_chat_template(engine_messages, tokenize=False, add_generation_prompt=True)


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    twin = scene()
    return [chatml_prompt(twin, q) for q in ("the nearer cup", "the far cup")] + [expected_rollout(twin)]


def chatml_prompt(twin: DigitalTwin, query: str) -> str:
    """The prompt as text, for training the tokenizer before a tokenizer exists."""
    messages = ShortPrompt(few_shot=False).messages_for(twin, query)
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages) + "<|im_start|>assistant\n"


def save_model(kind: str, directory: Path, corpus: list[str], seed: int = 0):
    tokenizer = build_tokenizer(corpus)
    torch.manual_seed(seed)
    cls = transformers.LlamaForCausalLM if kind == "llama" else transformers.Qwen3ForCausalLM
    model = cls(model_config(kind, len(tokenizer), tokenizer.eos_token_id))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model, tokenizer


@pytest.fixture(scope="module", params=["llama", "qwen3"])
def random_model_dir(request, tmp_path_factory, corpus) -> Path:
    directory = tmp_path_factory.mktemp(f"tiny-{request.param}")
    save_model(request.param, directory, corpus)
    return directory


@pytest.fixture(scope="module")
def memorised_dir(tmp_path_factory, corpus) -> Path:
    """A tiny Llama overfitted to one full rollout (prompt + chain), saved with its tokenizer."""
    directory = tmp_path_factory.mktemp("tiny-memorised")
    model, tokenizer = save_model("llama", directory, corpus, seed=1)
    twin = scene()
    text = prompt_text(tokenizer, twin, "the nearer cup") + expected_rollout(twin) + "<|im_end|>"
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(400):
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 0.005:
            break
    assert loss.item() < 0.05, f"tiny model did not memorise the rollout (loss {loss.item():.3f})"
    model.save_pretrained(directory)
    return directory


def load(directory: Path, **overrides) -> HFBackend:
    return HFBackend.from_pretrained(HFBackendConfig(model=str(directory), dtype="float32", **overrides))


def request(text: str = "", stop=(), max_new_tokens: int = 12, query: str = "the nearer cup") -> GenerationRequest:
    messages = ShortPrompt(few_shot=False).messages_for(scene(), query)
    return GenerationRequest(messages=messages, assistant_prefix=text, stop=stop, max_new_tokens=max_new_tokens)


def test_greedy_is_deterministic_and_honours_the_budget(random_model_dir: Path) -> None:
    backend = load(random_model_dir)
    first = backend.complete(request())
    backend.clear_cache()
    second = backend.complete(request())
    assert first.text == second.text and first.new_tokens == second.new_tokens
    assert first.new_tokens <= 12 and first.stop_reason in ("length", "eos")
    assert first.prompt_tokens > 20 and first.cached_tokens == 0


def test_prefix_cache_gives_the_same_tokens_as_reencoding(random_model_dir: Path) -> None:
    cached = load(random_model_dir)
    fresh = load(random_model_dir, prefix_cache=False)
    a = cached.complete(request(query="the nearer cup"))
    b = cached.complete(request(query="the far cup"))  # shares the twin prefix with the previous prompt
    c = cached.complete(request(text=b.text, query="the far cup"))  # resume: everything before is cached
    assert b.cached_tokens > 0.8 * a.prompt_tokens
    assert c.cached_tokens >= b.prompt_tokens
    assert [fresh.complete(request(query="the far cup")).text,
            fresh.complete(request(text=b.text, query="the far cup")).text] == [b.text, c.text]
    assert fresh.complete(request()).cached_tokens == 0


def test_stop_strings_end_generation_on_the_stop(random_model_dir: Path) -> None:
    backend = load(random_model_dir)
    free = backend.complete(request(max_new_tokens=16))
    if len(free.text) < 6:
        pytest.skip("random model ended immediately")
    stop = free.text[3:6]
    stopped = backend.complete(request(stop=(stop,), max_new_tokens=16))
    assert stopped.stop_reason == "stop"
    assert stopped.text.endswith(stop) and free.text.startswith(stopped.text)
    assert stopped.text.find(stop) == len(stopped.text) - len(stop)


def test_sampling_is_seeded(random_model_dir: Path) -> None:
    backend = load(random_model_dir)
    req = request(max_new_tokens=10)
    req.temperature, req.seed = 1.5, 7
    assert backend.complete(req).text == backend.complete(req).text


def test_engine_pauses_runs_tools_and_resumes_on_a_real_model(memorised_dir: Path) -> None:
    backend = load(memorised_dir)
    twin = scene()
    engine = RolloutEngine(backend, RolloutConfig(constrained=False), prompt=ShortPrompt(few_shot=False))
    result = engine.run(twin, "the nearer cup")
    assert result.text == expected_rollout(twin)
    assert result.rounds[0].calls == PLAN
    assert result.rounds[0].results == run_plan(twin, PLAN)  # inserted results == a direct tool call
    assert results_block(run_plan(twin, PLAN)) in result.text
    assert result.answer_ids == [3] and result.failures == []
    assert result.generation_calls == 2
    # The resume re-encoded only the inserted results: the first turn's prompt and output were cached
    # (the first call itself had nothing cached; 2 tokens of slack for the token at the stop boundary).
    first_prompt = len(backend.encode(backend.render(engine.messages(twin, "the nearer cup"))))
    first_turn = result.text[:result.text.index("</plan>") + len("</plan>")]
    assert result.cached_tokens >= first_prompt + len(backend.encode(first_turn)) - 2


def test_loader_reads_an_hf_directory_and_a_peft_adapter(random_model_dir: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    base = load(random_model_dir)
    peft_model = get_peft_model(base.model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                       init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    plain = load_reasoner(ReasonerConfig(spec=str(random_model_dir), backend="hf", dtype="float32"))
    adapted = load_reasoner(ReasonerConfig(spec=str(random_model_dir), adapter=str(tmp_path / "adapter"),
                                           dtype="float32"))
    assert isinstance(adapted, HFBackend) and adapted.adapter == str(tmp_path / "adapter")
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.inference_mode():
        delta = (adapted.model(ids).logits - plain.model(ids).logits).abs().max().item()
    assert delta > 1e-4  # the merged adapter changed the model


def test_load_errors_are_frs_errors(tmp_path: Path) -> None:
    with pytest.raises(FrsError, match="cannot load reasoner model"):
        HFBackend.from_pretrained(HFBackendConfig(model=str(tmp_path / "missing")))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(FrsError, match="cannot load reasoner model"):
        HFBackend.from_pretrained(HFBackendConfig(model=str(tmp_path)))


def test_context_limit_is_an_error_generation(random_model_dir: Path) -> None:
    backend = load(random_model_dir, max_context=32)
    generation = backend.complete(request())
    assert generation.stop_reason == "error" and "max_context" in generation.error


@pytest.mark.parametrize("kwargs", [{"dtype": "float8"}, {"threads": 0}, {"max_context": 4}])
def test_config_validation(kwargs) -> None:
    with pytest.raises(ValueError):
        HFBackendConfig(model="x", **kwargs)


def test_bfloat16_loads_and_generates(random_model_dir: Path) -> None:
    backend = load(random_model_dir)
    bf16 = HFBackend.from_pretrained(HFBackendConfig(model=str(random_model_dir), dtype="bfloat16"))
    assert bf16.model.dtype == torch.bfloat16 and backend.model.dtype == torch.float32
    generation = bf16.complete(request(max_new_tokens=4))
    assert generation.stop_reason in ("length", "eos") and generation.error is None


def test_batched_generation_matches_one_at_a_time(random_model_dir: Path) -> None:
    backend = load(random_model_dir)
    requests = [request(query="the nearer cup", max_new_tokens=10), request(query="the far cup", max_new_tokens=6),
                request(query="a much longer query about the cups on the table", max_new_tokens=10)]
    batched = backend.complete_many(requests)
    assert backend._cache_ids and backend._cache.get_seq_length() == len(backend._cache_ids)  # shared prefix kept
    shared = len(backend._cache_ids)
    single = [load(random_model_dir, prefix_cache=False).complete(r) for r in requests]
    assert [g.text for g in batched] == [g.text for g in single]
    assert [g.new_tokens for g in batched] == [g.new_tokens for g in single]
    assert [g.cached_tokens for g in batched][1:] == [shared, shared]
    follow_up = backend.complete(request(query="the nearer cup"))
    assert follow_up.cached_tokens >= shared  # the next query starts from the kept prefix


def test_engine_batches_queries_in_lockstep_on_a_real_model(memorised_dir: Path) -> None:
    backend = load(memorised_dir)
    twin = scene()
    engine = RolloutEngine(backend, RolloutConfig(constrained=False), prompt=ShortPrompt(few_shot=False))
    results = engine.run_many(twin, ["the nearer cup", "the nearer cup"])
    assert [r.text for r in results] == [expected_rollout(twin)] * 2
    assert all(r.rounds[0].results == run_plan(twin, PLAN) and r.answer_ids == [3] for r in results)
