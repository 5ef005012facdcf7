"""Write an in-memory transformers causal LM (Qwen3, or Llama / SmolLM2) to a llama.cpp GGUF, then quantise it.

Used by ``frs bench efficiency`` to time the Qwen3 architecture in the student's own runtime
and quantisation (llama.cpp, Q8_0): a random-weight ``Qwen3ForCausalLM`` built from a config
(nothing downloaded) is written as an F16 GGUF and re-quantised by llama.cpp's quantiser.

Hand-written because no maintained library writes a GGUF from a model held in memory:
llama.cpp's ``convert_hf_to_gguf.py`` reads a checkpoint folder (config.json, safetensors,
tokenizer files) and is not installed with llama-cpp-python; the ``gguf`` package only
provides names and a writer. Names come from the ``gguf`` package's own map
(``gguf.get_tensor_name_map``), and the conventions follow that script (checked against the
llama.cpp vendored by llama-cpp-python 0.3.36):

- metadata as ``TextModel.set_gguf_parameters``: context, embedding, feed-forward lengths,
  block count, head counts, ``key_length`` / ``value_length`` = ``head_dim`` (Qwen3-0.6B's
  head_dim 128 is not hidden / heads = 64; llama.cpp defaults ``n_rot`` to ``key_length``),
  rope base, RMS epsilon; ``vocab_size`` and ``rope.dimension_count`` as ``LlamaModel`` adds;
- q/k rows permuted for ``llama`` only (llama.cpp's llama graph ropes adjacent pairs, HF rotates
  halves); ``qwen3`` is a NEOX-rope architecture in llama.cpp and its weights are written as is,
  including the per-head ``q_norm`` / ``k_norm`` (``attn_q_norm`` / ``attn_k_norm``);
- tied embeddings: no ``output.weight`` (llama.cpp then reuses ``token_embd``, as in
  ``src/models/qwen3.cpp``); 1-D tensors (norms) are always F32.

Tokenizer: llama.cpp refuses a model without one, and the GGUF's token list fixes the vocabulary
size (``n_vocab = vocab.n_tokens()`` shapes ``token_embd``). The ``tokenizer.*`` metadata is
copied from another GGUF (by default the embedded SmolLM2's, 49152 tokens). When the model's
vocabulary is larger (Qwen3: 151936), the token list is padded with ``[PAD<id>]`` tokens of type
UNUSED, as ``convert_hf_to_gguf.py`` pads Qwen's own vocabulary (151669 tokens for a 151936-row
matrix); llama-vocab.cpp only requires token texts to be unique. The embedding and output
matrices keep the model's true size, which is what a decode step's time depends on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastreasonseg.errors import FrsError
from fastreasonseg.io import atomic_path
from fastreasonseg.reasoning.backends.gguf_merge import MERGED_TENSOR_TYPE

# What llama.cpp's quantiser can make without an importance matrix (names of gguf.LlamaFileType minus MOSTLY_).
QUANT_TYPES = ("F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1", "Q4_0")
# The type of the student the runtime loads by default (its adapter merged into Q8_0 tensors).
DEFAULT_QUANT_TYPE = MERGED_TENSOR_TYPE
_ARCHS = ("qwen3", "llama")
_PAD_TYPES = {"tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.scores"}


def check_quant_type(name: str) -> str:
    """``name`` upper-cased if llama.cpp's quantiser makes it without an importance matrix, else a ValueError."""
    if name.upper() not in QUANT_TYPES:
        raise ValueError(f"GGUF type must be one of {', '.join(QUANT_TYPES)}, got {name!r}")
    return name.upper()


def _head_dim(config: Any) -> int:
    return int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)


def _tokenizer_fields(tokenizer_gguf: Path, vocab_size: int) -> list[tuple[str, Any, Any, Any]]:
    """``(key, value, type, sub_type)`` of every ``tokenizer.*`` field, token arrays padded to ``vocab_size``."""
    import gguf

    from fastreasonseg.reasoning.backends.gguf_lora import open_gguf

    reader = open_gguf(tokenizer_gguf)
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    if tokens is None:
        raise FrsError(f"{tokenizer_gguf.name} holds no tokenizer (tokenizer.ggml.tokens)")
    n_tokens = len(tokens.data)
    if n_tokens > vocab_size:
        raise FrsError(f"the model's vocabulary ({vocab_size}) is smaller than the tokenizer's ({n_tokens} tokens in "
                       f"{tokenizer_gguf.name}); build the model with vocab_size >= {n_tokens}")
    pads = [f"[PAD{i}]" for i in range(n_tokens, vocab_size)]
    fields = []
    for field in reader.fields.values():
        if not field.name.startswith("tokenizer."):
            continue
        is_array = field.types[0] == gguf.GGUFValueType.ARRAY
        value = field.contents()
        if field.name in _PAD_TYPES and pads:
            if len(value) != n_tokens:
                raise FrsError(f"{tokenizer_gguf.name}: {field.name} has {len(value)} entries for {n_tokens} tokens")
            if field.name == "tokenizer.ggml.tokens":
                if set(pads) & set(value):
                    raise FrsError(f"{tokenizer_gguf.name} already has a token named like a padding token")
                value = [*value, *pads]
            elif field.name == "tokenizer.ggml.token_type":
                value = [*value, *[int(gguf.TokenType.UNUSED)] * len(pads)]
            else:
                value = [*value, *[-1000.0] * len(pads)]
        fields.append((field.name, value, field.types[0], field.types[-1] if is_array else None))
    return fields


def export_hf_model(model: Any, out_path: str | Path, *, dtype: str = "F16", tokenizer_gguf: str | Path | None = None,
                    name: str | None = None) -> Path:
    """Write ``model`` (a transformers Qwen3 or Llama causal LM) to ``out_path`` as a GGUF llama.cpp loads.

    ``dtype`` is F16 or F32 for 2-D tensors (1-D tensors are F32). ``tokenizer_gguf`` supplies the
    ``tokenizer.*`` metadata (default: the embedded SmolLM2 GGUF); its token list is padded to the
    model's vocabulary (module docstring). Tensors are converted one at a time while writing, so the
    extra memory is one tensor, not a second copy of the model.
    """
    import gguf
    import numpy as np
    import torch

    from fastreasonseg.reasoning.backends.gguf_lora import _permute_rows

    config = model.config
    arch = getattr(config, "model_type", None)
    if arch not in _ARCHS:
        raise FrsError(f"cannot write a {arch!r} model as GGUF (supported: {', '.join(_ARCHS)})")
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        raise FrsError("models with attention or MLP biases are not supported")
    rope = dict(getattr(config, "rope_parameters", None) or {})
    if rope.get("rope_type", "default") != "default":
        raise FrsError(f"rope scaling {rope.get('rope_type')!r} is not supported (only plain RoPE)")
    dtype = dtype.upper()
    if dtype not in ("F16", "F32"):
        raise FrsError(f"dtype must be F16 or F32, got {dtype!r}")
    matrix_dtype = np.float16 if dtype == "F16" else np.float32
    if tokenizer_gguf is None:
        from fastreasonseg.reasoning.loader import default_gguf_path

        tokenizer_gguf = default_gguf_path()

    n_head, n_head_kv = int(config.num_attention_heads), int(config.num_key_value_heads)
    head_dim, n_layer = _head_dim(config), int(config.num_hidden_layers)
    arch_enum = {value: key for key, value in gguf.MODEL_ARCH_NAMES.items()}[arch]
    names = gguf.get_tensor_name_map(arch_enum, n_layer)
    tied = bool(getattr(config, "tie_word_embeddings", False))

    # Plan every tensor first: the header (names, shapes, types) precedes the data.
    plan: list[tuple[str, str, tuple[int, ...], Any]] = []  # (HF name, GGUF name, numpy shape, numpy dtype)
    state = model.state_dict()
    for hf_name, tensor in state.items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reuses token_embd when output.weight is absent
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise FrsError(f"tensor {hf_name} has no {arch} GGUF name")
        plan.append((hf_name, gguf_name, tuple(tensor.shape), matrix_dtype if tensor.dim() >= 2 else np.float32))

    def array(hf_name: str, gguf_name: str, numpy_dtype) -> np.ndarray:
        tensor = state[hf_name].detach()
        if arch == "llama" and gguf_name.endswith(".attn_q.weight"):
            tensor = _permute_rows(tensor, n_head)
        elif arch == "llama" and gguf_name.endswith(".attn_k.weight"):
            tensor = _permute_rows(tensor, n_head_kv)
        torch_dtype = torch.float16 if numpy_dtype == np.float16 else torch.float32
        return tensor.to(device="cpu", dtype=torch_dtype).contiguous().numpy()

    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:  # a failed export leaves no partial model behind
        writer = gguf.GGUFWriter(str(tmp), arch)
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(name or f"random {arch} ({n_layer} layers, width {config.hidden_size})")
        writer.add_context_length(int(config.max_position_embeddings))
        writer.add_embedding_length(int(config.hidden_size))
        writer.add_block_count(n_layer)
        writer.add_feed_forward_length(int(config.intermediate_size))
        writer.add_head_count(n_head)
        writer.add_head_count_kv(n_head_kv)
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
        writer.add_rope_dimension_count(head_dim)
        writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))))
        writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
        writer.add_vocab_size(int(config.vocab_size))
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "F16" else gguf.LlamaFileType.ALL_F32)
        for key, value, value_type, sub_type in _tokenizer_fields(Path(tokenizer_gguf), int(config.vocab_size)):
            writer.add_key_value(key, value, value_type, sub_type=sub_type)
        for _, gguf_name, shape, numpy_dtype in plan:
            nbytes = int(np.prod(shape)) * np.dtype(numpy_dtype).itemsize
            writer.add_tensor_info(gguf_name, shape, np.dtype(numpy_dtype), nbytes)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for hf_name, gguf_name, _, numpy_dtype in plan:
            writer.write_tensor_data(array(hf_name, gguf_name, numpy_dtype))
        writer.close()
    return out_path


def quantize_gguf(source: str | Path, target: str | Path, quant_type: str = DEFAULT_QUANT_TYPE, *,
                  threads: int = 0) -> Path:
    """Quantise the F16/F32 GGUF ``source`` to ``quant_type`` with llama.cpp's own quantiser (``llama_model_quantize``).

    llama.cpp picks per-tensor types as its ``llama-quantize`` tool does: 1-D tensors stay F32; with
    Q8_0 every matrix (tied ``token_embd`` included) is Q8_0; with other types the output/tied
    embedding matrix may get more bits (e.g. Q6_K for Q4_1 when its rows are a multiple of 32).
    ``threads`` 0 lets llama.cpp use every core.
    """
    import ctypes

    import gguf
    import llama_cpp

    quant_type = check_quant_type(quant_type)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(gguf.LlamaFileType[f"MOSTLY_{quant_type}"])
    params.nthread = threads
    target = Path(target)
    log = logging.getLogger("llama-cpp-python")  # llama-cpp-python's log callback prints at this logger's level
    previous = log.level
    log.setLevel(logging.ERROR)
    try:
        with atomic_path(target) as tmp:
            status = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params))
            if status != 0:
                raise FrsError(f"llama.cpp could not quantise {Path(source).name} to {quant_type} (status {status})")
    finally:
        log.setLevel(previous)
    return target
