"""Convert a PEFT LoRA adapter (safetensors) into a llama.cpp GGUF LoRA adapter.

llama.cpp applies LoRA adapters at run time from a GGUF file (``general.type = adapter``,
``adapter.type = lora``, ``adapter.lora.alpha``, tensors ``<base tensor>.lora_a`` /
``.lora_b``). We convert instead of merging because merging would mean re-quantising the
whole student into a new GGUF, while the adapter stays a few MB and the shipped Q4_1 base
stays untouched; the student was trained on exactly that de-quantised base, so applying the
adapter on it reproduces training.

Hand-written because the reference converter (``convert_lora_to_gguf.py`` in the
llama.cpp repository) is not shipped in any wheel and needs the base model's HF config;
this one reads what it needs from the base GGUF and uses the ``gguf`` package for names
and writing. Conventions follow that script: PEFT ``lora_A`` (r x in) and ``lora_B``
(out x r) are written as is; for the ``llama`` architecture the q/k projections' rows
are permuted as the HF-to-GGUF conversion permutes the base weights (only ``lora_B``
carries output rows); rsLoRA's ``alpha / sqrt(r)`` scale is expressed as an equivalent
``alpha`` because llama.cpp scales by ``alpha / r``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

from fastreasonseg.errors import FrsError
from fastreasonseg.io import atomic_path

# Architectures whose HF-to-GGUF conversion permutes q/k rows for llama.cpp's RoPE layout.
_PERMUTED_QK_ARCHS = frozenset({"llama"})


def _field(reader, key: str):
    field = reader.fields.get(key)
    if field is None:
        return None
    return field.contents()


def _permute_rows(matrix, n_head: int):
    """The row permutation convert_hf_to_gguf applies to llama q/k weights, applied to a (out, r) lora_B."""
    out = matrix.shape[0]
    return matrix.reshape(n_head, 2, out // n_head // 2, *matrix.shape[1:]).swapaxes(1, 2).reshape(matrix.shape)


def convert_peft_lora(adapter_dir: str | Path, base_gguf: str | Path, out_path: str | Path) -> Path:
    """Write ``adapter_dir`` (PEFT LoRA) as a GGUF LoRA adapter for the model in ``base_gguf``."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    adapter_dir, out_path = Path(adapter_dir), Path(out_path)
    try:
        config = json.loads((adapter_dir / "adapter_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise FrsError(f"cannot read {adapter_dir}/adapter_config.json: {exc}") from None
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise FrsError(f"adapter {adapter_dir} is {config.get('peft_type')}, only LoRA converts to llama.cpp")
    if config.get("use_dora") or config.get("modules_to_save"):
        raise FrsError(f"adapter {adapter_dir} uses DoRA or modules_to_save, which llama.cpp cannot apply; "
                       "use the transformers backend (--backend hf)")
    weights_path = adapter_dir / "adapter_model.safetensors"
    if not weights_path.is_file():
        raise FrsError(f"{weights_path} not found (only safetensors adapters convert to llama.cpp)")
    tensors = load_file(str(weights_path))

    reader = gguf.GGUFReader(str(base_gguf))
    arch = _field(reader, "general.architecture")
    n_blocks = _field(reader, f"{arch}.block_count")
    n_head = _field(reader, f"{arch}.attention.head_count")
    n_head_kv = _field(reader, f"{arch}.attention.head_count_kv") or n_head
    arch_enum = {name: enum for enum, name in gguf.MODEL_ARCH_NAMES.items()}.get(arch)
    if arch_enum is None or n_blocks is None:
        raise FrsError(f"base GGUF {base_gguf} has an architecture ({arch!r}) the gguf package cannot map")
    names = gguf.get_tensor_name_map(arch_enum, int(n_blocks))
    base_tensors = {t.name for t in reader.tensors}

    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        if ".lora_A." in key or ".lora_B." in key:
            part = "a" if ".lora_A." in key else "b"
            module = key.replace("base_model.model.", "", 1).split(".lora_")[0]
            pairs.setdefault(module, {})[part] = value
        else:
            raise FrsError(f"adapter tensor {key!r} is not a LoRA A/B matrix; llama.cpp cannot apply it")
    if not pairs:
        raise FrsError(f"adapter {adapter_dir} holds no LoRA tensors")

    rank = int(config.get("r", 8))
    alpha = float(config.get("lora_alpha", rank))
    if config.get("use_rslora"):
        alpha *= math.sqrt(rank)  # llama.cpp scales by alpha / r; rsLoRA means alpha / sqrt(r)
    with atomic_path(out_path) as tmp:  # a failed conversion leaves no partial adapter behind
        writer = gguf.GGUFWriter(str(tmp), arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        for module, pair in sorted(pairs.items()):
            if set(pair) != {"a", "b"}:
                raise FrsError(f"adapter module {module} lacks its lora_A or lora_B matrix")
            base_name = names.get_name(module)
            if base_name is None or f"{base_name}.weight" not in base_tensors:
                raise FrsError(f"adapter targets {module}, which has no tensor in {Path(base_gguf).name}")
            lora_a = np.ascontiguousarray(pair["a"], dtype=np.float32)
            lora_b = np.asarray(pair["b"], dtype=np.float32)
            if arch in _PERMUTED_QK_ARCHS and base_name.endswith(".attn_q"):
                lora_b = _permute_rows(lora_b, int(n_head))
            elif arch in _PERMUTED_QK_ARCHS and base_name.endswith(".attn_k"):
                lora_b = _permute_rows(lora_b, int(n_head_kv))
            writer.add_tensor(f"{base_name}.weight.lora_a", lora_a)
            writer.add_tensor(f"{base_name}.weight.lora_b", np.ascontiguousarray(lora_b))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return out_path


def cache_dir() -> Path:
    root = os.environ.get("FRS_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache",
                                                           "fastreasonseg")
    return Path(root)


def gguf_adapter_for(adapter_dir: str | Path, base_gguf: str | Path) -> Path:
    """The converted GGUF adapter for ``adapter_dir``, converting once and caching by content hash."""
    adapter_dir = Path(adapter_dir)
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        path = adapter_dir / name
        if path.is_file():
            digest.update(path.read_bytes())
    digest.update(Path(base_gguf).name.encode())
    name = f"{digest.hexdigest()[:20]}.gguf"
    target = cache_dir() / "lora" / name
    if target.is_file():
        return target
    try:
        return convert_peft_lora(adapter_dir, base_gguf, target)
    except OSError:  # read-only home: convert into the temp folder instead (redone per machine boot)
        import tempfile

        return convert_peft_lora(adapter_dir, base_gguf, Path(tempfile.gettempdir()) / "fastreasonseg-lora" / name)
