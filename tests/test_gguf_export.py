"""Writing an in-memory transformers model as a llama.cpp GGUF (``eval.gguf_export``) and the bench's -gguf row.

Tiny random models (width 64, 2 layers, 4 heads, 2 KV heads, head_dim 16, FFN 128) over the
embedded SmolLM2 tokenizer padded from 49152 to 49216 tokens, as Qwen3's 151936-row vocabulary
is padded. Weights are drawn so that every part of the network shows in the logits: matrices
``N(0, 1/in)`` (unit-scale activations, attention scores of order 1, so RoPE and the q/k
layout matter), embeddings ``N(0, 1)``, and every norm weight ``U(0.5, 1.5)`` (a q_norm /
k_norm mix-up would not show with HF's all-ones default).

Tolerance of the F32 GGUF against transformers in float32: both compute in float32 and differ
only in summation order and in how RoPE's sines and cosines are computed, so logits agree to a
few ulps of the largest logit (measured when written: 2.1e-5 / 2.3e-5 for qwen3 / llama on
logits up to 56 / 51, i.e. ~3 ulps of 2^-23 relative). The bound is 1e-5 of the largest logit
(~5e-4), ~25x the measured error; it needs llama.cpp's KV cache in F32 too: the default F16
cache alone gave 1.1e-2 / 1.7e-2 (F16 rounding of keys and values, 2^-11 relative), ~20x over
the bound, so the check is sharp enough to see a half-precision step anywhere in the chain.
The mistakes a converter can make (a q/k layout or a norm swapped) move the logits by order 1,
which the controls below show on the same prompt.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from fastreasonseg.errors import FrsError

torch = pytest.importorskip("torch")
llama_cpp = pytest.importorskip("llama_cpp")
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

TOKENIZER_TOKENS = 49152  # the embedded SmolLM2 GGUF's token list
VOCAB = TOKENIZER_TOKENS + 64  # padded with [PAD<id>] tokens, as Qwen3's vocabulary is
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            head_dim=16, tie_word_embeddings=True, max_position_embeddings=256)
# Random ids from the whole vocabulary, padding tokens included (the last one is a [PAD] id).
PROMPT = [*np.random.default_rng(0).integers(0, VOCAB, 11).tolist(), VOCAB - 1]
T = gguf.GGMLQuantizationType


def tiny_model(arch: str, vocab: int = VOCAB, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    config_class, model_class = {"qwen3": (Qwen3Config, Qwen3ForCausalLM),
                                 "llama": (LlamaConfig, LlamaForCausalLM)}[arch]
    torch.manual_seed(seed)
    model = model_class(config_class(vocab_size=vocab, **TINY)).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() == 1:
                parameter.uniform_(0.5, 1.5)
            elif "embed_tokens" in name:
                parameter.normal_(0, 1)
            else:
                parameter.normal_(0, parameter.shape[1] ** -0.5)
    return model


def hf_logits(model) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([PROMPT])).logits[0].numpy()


def llama_logits(path: Path, *, f32_cache: bool) -> np.ndarray:
    """Logits of every PROMPT position from llama.cpp (1 thread; KV cache F32 or llama.cpp's default F16)."""
    cache = {"type_k": llama_cpp.GGML_TYPE_F32, "type_v": llama_cpp.GGML_TYPE_F32} if f32_cache else {}
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, n_threads=1, n_threads_batch=1, logits_all=True,
                          verbose=False, **cache)
    try:
        assert llm.n_vocab() == VOCAB
        llm.eval(PROMPT)
        return np.array(llm.scores[: len(PROMPT)], dtype=np.float32)
    finally:
        llm.close()


def bound(reference: np.ndarray) -> float:
    return 1e-5 * float(np.abs(reference).max())  # module docstring


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory) -> tuple[object, Path]:
    from fastreasonseg.eval.gguf_export import export_hf_model

    model = tiny_model("qwen3")
    return model, export_hf_model(model, tmp_path_factory.mktemp("qwen3") / "tiny.f32.gguf", dtype="F32")


def test_qwen3_gguf_metadata_tensors_and_padded_tokenizer(qwen3) -> None:
    model, path = qwen3
    reader = gguf.GGUFReader(str(path))
    fields = {key: field.contents() for key, field in reader.fields.items()
              if not key.startswith("GGUF.") and key not in ("tokenizer.ggml.merges", "tokenizer.chat_template")}
    assert fields["general.architecture"] == "qwen3"
    expected = {"context_length": 256, "embedding_length": 64, "block_count": 2, "feed_forward_length": 128,
                "attention.head_count": 4, "attention.head_count_kv": 2, "attention.key_length": 16,
                "attention.value_length": 16, "rope.dimension_count": 16, "vocab_size": VOCAB}
    assert {key: fields[f"qwen3.{key}"] for key in expected} == expected
    assert fields["qwen3.rope.freq_base"] == pytest.approx(model.config.rope_parameters["rope_theta"])
    assert fields["qwen3.attention.layer_norm_rms_epsilon"] == pytest.approx(model.config.rms_norm_eps)
    tokens, types = fields["tokenizer.ggml.tokens"], fields["tokenizer.ggml.token_type"]
    assert len(tokens) == len(types) == VOCAB
    assert tokens[TOKENIZER_TOKENS:] == [f"[PAD{i}]" for i in range(TOKENIZER_TOKENS, VOCAB)]
    assert set(types[TOKENIZER_TOKENS:]) == {int(gguf.TokenType.UNUSED)}
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "smollm"
    tensors = {t.name: t for t in reader.tensors}
    # Tied embeddings: no output.weight; q/k norms present; norms F32 and matrices F32 as asked.
    assert "output.weight" not in tensors and {"blk.1.attn_q_norm.weight", "blk.1.attn_k_norm.weight"} <= set(tensors)
    assert len(tensors) == 1 + 1 + 2 * 11  # token_embd, output_norm, per block 4 attention + 2 q/k norms + 3 FFN + 2 norms
    assert {t.tensor_type for t in tensors.values()} == {T.F32}
    assert sum(int(np.prod(t.shape)) for t in tensors.values()) == sum(p.numel() for p in model.parameters())
    embedding = model.model.embed_tokens.weight.detach().numpy()
    assert np.array_equal(tensors["token_embd.weight"].data, embedding)
    q_proj = model.model.layers[0].self_attn.q_proj.weight.detach().numpy()
    assert np.array_equal(tensors["blk.0.attn_q.weight"].data, q_proj)  # qwen3 (NEOX rope): rows not permuted


def test_qwen3_f32_gguf_logits_match_transformers(qwen3) -> None:
    model, path = qwen3
    reference = hf_logits(model)
    got = llama_logits(path, f32_cache=True)
    assert got.shape == reference.shape == (len(PROMPT), VOCAB)
    error = float(np.abs(got - reference).max())
    assert error <= bound(reference), error
    # Control: swapping q_norm and k_norm (a converter mix-up) moves the logits far beyond the bound.
    with torch.no_grad():
        attention = model.model.layers[0].self_attn
        q, k = attention.q_norm.weight.clone(), attention.k_norm.weight.clone()
        attention.q_norm.weight.copy_(k), attention.k_norm.weight.copy_(q)
        swapped = hf_logits(model)
        attention.q_norm.weight.copy_(q), attention.k_norm.weight.copy_(k)
    assert float(np.abs(swapped - reference).max()) > 100 * bound(reference)
    # llama.cpp's default F16 KV cache is visibly coarser than the bound (it is why the check uses F32).
    assert float(np.abs(llama_logits(path, f32_cache=False) - reference).max()) > bound(reference)


def test_llama_f32_gguf_logits_match_transformers(tmp_path: Path) -> None:
    """The llama layout (SmolLM2's): q/k rows permuted for llama.cpp's rope, checked through the logits."""
    from fastreasonseg.eval.gguf_export import export_hf_model
    from fastreasonseg.reasoning.backends.gguf_lora import _permute_rows

    model = tiny_model("llama", seed=1)
    path = export_hf_model(model, tmp_path / "llama.gguf", dtype="F32")
    reference = hf_logits(model)
    error = float(np.abs(llama_logits(path, f32_cache=True) - reference).max())
    assert error <= bound(reference), error
    # Control: the q/k row order matters on this prompt (a missing or wrong permutation would not pass).
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.copy_(_permute_rows(layer.self_attn.q_proj.weight.clone(), 4))
            layer.self_attn.k_proj.weight.copy_(_permute_rows(layer.self_attn.k_proj.weight.clone(), 2))
    assert float(np.abs(hf_logits(model) - reference).max()) > 100 * bound(reference)


def test_q8_0_quantised_gguf_loads_and_decodes(qwen3, tmp_path: Path) -> None:
    from fastreasonseg.eval.gguf_export import quantize_gguf

    model, path = qwen3
    quantised = quantize_gguf(path, tmp_path / "tiny.q8_0.gguf", "Q8_0", threads=1)
    tensors = {t.name: t.tensor_type for t in gguf.GGUFReader(str(quantised)).tensors}
    matrices = {name for name in tensors if not name.endswith("norm.weight")}
    assert {tensors[name] for name in matrices} == {T.Q8_0} and "token_embd.weight" in matrices
    assert {tensors[name] for name in set(tensors) - matrices} == {T.F32}
    assert not list(tmp_path.glob("*.tmp"))
    # Q8_0 rounds each weight by up to half of max|block|/127: the logits move by ~1 % of the largest (measured 1.3 %).
    reference = hf_logits(model)
    got = llama_logits(quantised, f32_cache=True)
    assert np.corrcoef(got.ravel(), reference.ravel())[0, 1] > 0.999
    assert float(np.abs(got - reference).max()) < 0.05 * float(np.abs(reference).max())
    llm = llama_cpp.Llama(model_path=str(quantised), n_ctx=64, n_threads=1, n_threads_batch=1, verbose=False,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)  # as got was computed
    try:
        assert llm.detokenize(llm.tokenize(b"hello world", add_bos=False)) == b"hello world"  # the copied tokenizer
        llm.eval(PROMPT)
        decoded = []
        for _ in range(4):
            decoded.append(int(llm.sample(top_k=1, temp=0.0)))
            llm.eval(decoded[-1:])
        assert decoded[0] == int(got[-1].argmax())  # greedy follows this file's own logits
        assert llm.n_tokens == len(PROMPT) + 4 and all(0 <= t < VOCAB for t in decoded)
    finally:
        llm.close()


def test_bad_inputs_are_frs_errors_and_leave_no_file(tmp_path: Path) -> None:
    from fastreasonseg.eval.gguf_export import check_quant_type, export_hf_model, quantize_gguf

    with pytest.raises(FrsError, match="smaller than the tokenizer's"):
        export_hf_model(tiny_model("qwen3", vocab=1000), tmp_path / "small.gguf")
    with pytest.raises(FrsError, match="dtype must be F16 or F32"):
        export_hf_model(tiny_model("qwen3"), tmp_path / "bf16.gguf", dtype="BF16")
    with pytest.raises(ValueError, match="GGUF type must be one of"):
        check_quant_type("IQ2_XXS")  # needs an importance matrix
    assert check_quant_type("q4_1") == "Q4_1"
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a gguf file")
    with pytest.raises(FrsError, match="could not quantise"):
        quantize_gguf(garbage, tmp_path / "out.gguf", threads=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.gguf"]


def test_bench_gguf_row_is_built_once_and_timed_like_the_student(tmp_path: Path, monkeypatch) -> None:
    import fastreasonseg.eval.bench as bench

    monkeypatch.setenv("FRS_CACHE_DIR", str(tmp_path / "cache"))
    builds = []
    real_build = bench._build_qwen3_gguf
    monkeypatch.setattr(bench, "_build_qwen3_gguf", lambda *args: builds.append(args) or real_build(*args))
    timed = []
    real_time = bench._time_gguf
    monkeypatch.setattr(bench, "_time_gguf", lambda path, config: timed.append(path) or real_time(path, config))
    config = bench.BenchConfig(reasoners=("qwen3-0.6b-gguf",), tiny=True, isolate=False, prompt_tokens=16,
                               new_tokens=4)
    bandwidth = {"read_gb_s": 2.0, "copy_gb_s": 4.0, "bound_gb_s": 4.0, "array_mb": 16}
    (row,) = bench.reasoner_benchmark(config, bandwidth)
    (again,) = bench.reasoner_benchmark(config, bandwidth)
    assert len(builds) == 1 and len(timed) == 2 and timed[0] == timed[1]  # cached, one timing function
    assert timed[0].parent == tmp_path / "cache" / "bench" and not list(timed[0].parent.glob("*.f16*"))
    assert row["reasoner"] == again["reasoner"] == "qwen3-0.6b-gguf"
    assert "Q8_0 GGUF (llama.cpp)" in row["model"]
    # Tiny Qwen3 over the tokenizer's 49152 tokens, tied embeddings counted once (as test_eval_bench counts it).
    per_layer = 64 * 64 + 2 * 64 * 32 + 64 * 64 + 2 * 16 + 3 * 64 * 128 + 2 * 64
    params = TOKENIZER_TOKENS * 64 + 2 * per_layer + 64
    assert row["params_m"] == pytest.approx(params / 1e6)
    norms = 2 * (2 * 16 + 2 * 64) + 64  # F32
    assert row["weight_bytes"] == (params - norms) // 32 * 34 + 4 * norms  # Q8_0: 34 bytes per block of 32
    assert row["decode_tok_s"] > 0 and row["prefill_tok_s"] > 0 and row["share_of_bound"] > 0
    with pytest.raises(ValueError, match="GGUF type"):
        bench.BenchConfig(gguf_type="Q3_X")
    assert bench.BenchConfig().reasoners[:2] == ("student", "qwen3-0.6b-gguf")
