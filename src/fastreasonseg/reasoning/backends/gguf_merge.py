"""Merge a PEFT LoRA adapter into a copy of its base GGUF, so llama.cpp runs no LoRA matmuls per token.

The run-time path (:mod:`~fastreasonseg.reasoning.backends.gguf_lora`) keeps the shipped
base untouched and adds ``scale * B (A x)`` on every token: measured ~9 % of decode time
with 2 threads, ~14 % with 1 (issue 18). Merging writes ``W' = dequant(W) + scale * B A``
for every tensor the adapter touches, re-quantised to the base tensor's own type, and
copies every other tensor byte for byte and all metadata unchanged (the copy follows the
``gguf`` package's ``gguf_new_metadata.py``).

Where this departs from what the student was trained on: training and the run-time path
see ``dequant(W) + delta`` exactly, the merged file sees ``quant(dequant(W) + delta)``,
a second rounding onto a grid. Re-quantising to the base's own Q4_1 erases the adapter:
on the embedded student the delta is ~1 % of a Q4_1 step (median over blocks of 32), so
the rounding puts the weights back near the grid points they came from; the change that
survives has a regression coefficient of 0.06 on the delta, and greedy rollouts on the
demo scenes gave 0 of 15 answers of the run-time adapter (they look like the base
model's). Q8_0 keeps the delta (coefficient 1.00, plus unbiased rounding noise) and gave
13 of 15 answers, as many as F16 did (13 of 15, 9 identical texts vs 7 for Q8_0): the
remaining flips are near-ties that any change of arithmetic flips (the run-time path
multiplies Q4_1 weights and adds an f32 LoRA product). So :func:`merged_gguf_for`, the
one path the llama.cpp backend uses, writes merged tensors as Q8_0 (the file grows from
98 to 145 MB); :func:`merge_peft_lora` keeps the base type by default.

Types: numpy in the installed ``gguf`` package re-quantises Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
BF16, F16 and F32 but not the K-quants; a base tensor of another type is written as Q8_0
(F16 if its rows are not a multiple of 32 long), logged, and listed in the merged file's
``fastreasonseg.merged_adapter.tensor_types`` metadata. The adapter's sha256 is recorded
under ``fastreasonseg.merged_adapter.sha256``.

Merged files are cached under ``<cache>/merged/`` keyed by the adapter's content hash, the
base file's name, size and modification time, and the requested type; each is about the
size of the base, and the folder may be deleted at any time (files are rebuilt on use).
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections import Counter
from pathlib import Path

from fastreasonseg.errors import FrsError
from fastreasonseg.io import atomic_path
from fastreasonseg.reasoning.backends.gguf_lora import adapter_digest, cached_file, open_gguf, read_peft_lora

logger = logging.getLogger(__name__)

METADATA_PREFIX = "fastreasonseg.merged_adapter"
# Bump when the merged file changes for the same inputs (cache files of older versions are then ignored).
_FORMAT_VERSION = 1
# How the llama.cpp backend applies an adapter: on every token, or merged into a copy of the model.
LORA_MODES = ("runtime", "merged")
# The default everywhere (ReasonerConfig, the llama.cpp backend, frs eval/bench, the load test): faster, same accuracy
# (docs/RUNTIME.md).
DEFAULT_LORA_MODE = "merged"
# The type merged tensors are stored in by merged_gguf_for: Q4_1 would erase the adapter (module docstring).
MERGED_TENSOR_TYPE = "Q8_0"


def can_quantize(qtype) -> bool:
    """Whether the installed ``gguf`` package can quantise to ``qtype`` (a GGMLQuantizationType) in numpy."""
    import gguf
    import numpy as np

    block = gguf.GGML_QUANT_SIZES[qtype][0]
    try:
        gguf.quants.quantize(np.zeros((1, block), dtype=np.float32), qtype)
    except NotImplementedError:
        return False
    return True


def _quant_type(name: str):
    import gguf

    try:
        qtype = gguf.GGMLQuantizationType[name.upper()]
    except KeyError:
        raise FrsError(f"unknown GGUF tensor type {name!r} (e.g. Q4_1, Q8_0, F16)") from None
    if not can_quantize(qtype):
        raise FrsError(f"the installed gguf package cannot quantise to {qtype.name}; use Q8_0 or F16")
    return qtype


def _output_type(base_type, n_cols: int, requested):
    """The type a merged tensor is written in: ``requested``, else the base's own, else Q8_0/F16."""
    import gguf

    if requested is not None:
        block = gguf.GGML_QUANT_SIZES[requested][0]
        if n_cols % block:
            raise FrsError(f"rows of {n_cols} weights cannot be stored as {requested.name} (blocks of {block})")
        return requested
    if can_quantize(base_type):
        return base_type
    q8 = gguf.GGMLQuantizationType.Q8_0
    return q8 if n_cols % gguf.GGML_QUANT_SIZES[q8][0] == 0 else gguf.GGMLQuantizationType.F16


def merge_peft_lora(adapter_dir: str | Path, base_gguf: str | Path, out_path: str | Path, *,
                    tensor_type: str | None = None) -> Path:
    """Write ``base_gguf`` with the PEFT LoRA ``adapter_dir`` merged into its weights to ``out_path``.

    ``tensor_type`` (e.g. ``"Q8_0"``) overrides the type of the merged tensors; by default each
    keeps its base type where numpy can re-quantise it (see the module docstring).
    """
    import gguf
    import numpy as np

    base_gguf, out_path = Path(base_gguf), Path(out_path)
    reader = open_gguf(base_gguf)
    lora = read_peft_lora(adapter_dir, reader, base_gguf.name)
    native = gguf.GGUFEndian.BIG if sys.byteorder == "big" else gguf.GGUFEndian.LITTLE
    if reader.endianess != native:
        raise FrsError(f"{base_gguf.name} is {reader.endianess.name.lower()}-endian; merging needs a native-endian "
                       "file (convert it with gguf_convert_endian.py)")
    requested = None if tensor_type is None else _quant_type(tensor_type)

    # Plan every tensor's output type first: the header (shapes, types, sizes) precedes the data.
    plan = {}  # tensor name -> the GGMLQuantizationType it is written in
    for tensor in reader.tensors:
        if tensor.name not in lora.pairs:
            continue
        lora_a, lora_b = lora.pairs[tensor.name]
        # ggml lists dimensions as (ne0 = in, ne1 = out); numpy and PEFT as (out, in).
        shape = (int(tensor.shape[1]), int(tensor.shape[0])) if len(tensor.shape) == 2 else None
        if shape != (lora_b.shape[0], lora_a.shape[1]):
            raise FrsError(f"adapter does not fit {base_gguf.name}: {tensor.name} is {shape} (out x in) but the "
                           f"adapter's delta is {(lora_b.shape[0], lora_a.shape[1])}; was it trained on another model?")
        plan[tensor.name] = _output_type(tensor.tensor_type, shape[1], requested)
    touched = [t for t in reader.tensors if t.name in plan]
    types = Counter(f"{t.tensor_type.name}->{plan[t.name].name}" for t in touched)
    retyped = Counter(f"{t.tensor_type.name}->{plan[t.name].name}" for t in touched if plan[t.name] != t.tensor_type)
    if retyped and requested is None:
        logger.warning("merging %s: numpy cannot re-quantise some base types, written instead as %s",
                       base_gguf.name, ", ".join(f"{pair} ({n} tensors)" for pair, n in sorted(retyped.items())))

    with atomic_path(out_path) as tmp:  # a failed merge leaves no partial model behind
        writer = gguf.GGUFWriter(str(tmp), lora.arch, endianess=reader.endianess)
        alignment = reader.fields.get(gguf.Keys.General.ALIGNMENT)
        if alignment is not None:
            writer.data_alignment = int(alignment.contents())
        for field in reader.fields.values():
            # GGUF.* are the reader's virtual fields; the writer adds the architecture itself.
            if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
                continue
            sub_type = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(field.name, field.contents(), field.types[0], sub_type=sub_type)
        writer.add_string(f"{METADATA_PREFIX}.sha256", adapter_digest(adapter_dir).hexdigest())
        writer.add_string(f"{METADATA_PREFIX}.name", Path(adapter_dir).resolve().name)
        writer.add_string(f"{METADATA_PREFIX}.base", base_gguf.name)
        writer.add_float32(f"{METADATA_PREFIX}.alpha", lora.alpha)
        writer.add_string(f"{METADATA_PREFIX}.tensor_types", ", ".join(f"{p} x{n}" for p, n in sorted(types.items())))

        for tensor in reader.tensors:
            qtype = plan.get(tensor.name)
            if qtype is None:
                writer.add_tensor_info(tensor.name, tensor.data.shape, tensor.data.dtype, tensor.data.nbytes,
                                       tensor.tensor_type)
            else:
                byte_shape = gguf.quant_shape_to_byte_shape((int(tensor.shape[1]), int(tensor.shape[0])), qtype)
                writer.add_tensor_info(tensor.name, byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape)), qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for tensor in reader.tensors:
            qtype = plan.get(tensor.name)
            if qtype is None:
                writer.write_tensor_data(tensor.data, tensor_endianess=reader.endianess)
                continue
            lora_a, lora_b = lora.pairs[tensor.name]
            weights = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32, copy=False)
            merged = weights + np.float32(lora.scale(tensor.name)) * (lora_b @ lora_a)
            writer.write_tensor_data(gguf.quants.quantize(merged, qtype))
        writer.close()
    return out_path


def merged_gguf_for(adapter_dir: str | Path, base_gguf: str | Path, *,
                    tensor_type: str | None = MERGED_TENSOR_TYPE) -> Path:
    """The merged GGUF of ``adapter_dir`` on ``base_gguf``, built on first use and cached (see the module docstring).

    ``tensor_type`` None keeps each merged tensor's base type (erases a small adapter on Q4_1).
    """
    base_gguf = Path(base_gguf)
    try:
        stat = base_gguf.stat()
    except OSError as exc:
        raise FrsError(f"cannot read GGUF {base_gguf}: {exc}") from None
    identity = (adapter_digest(adapter_dir).hexdigest(), base_gguf.name, stat.st_size, stat.st_mtime_ns,
                (tensor_type or "same").upper(), _FORMAT_VERSION)
    key = hashlib.sha256(repr(identity).encode()).hexdigest()[:20]

    def build(target: Path) -> Path:
        print(f"merging the adapter {Path(adapter_dir).name} into {base_gguf.name} once (about 10 s; cached as "
              f"{target})", file=sys.stderr)
        return merge_peft_lora(adapter_dir, base_gguf, target, tensor_type=tensor_type)

    return cached_file("merged", f"{base_gguf.stem}.{key}.gguf", build)
