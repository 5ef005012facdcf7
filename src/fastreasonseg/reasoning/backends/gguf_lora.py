"""Convert a PEFT LoRA adapter (safetensors) into a llama.cpp GGUF LoRA adapter.

llama.cpp applies LoRA adapters at run time from a GGUF file (``general.type = adapter``,
``adapter.type = lora``, ``adapter.lora.alpha``, tensors ``<base tensor>.lora_a`` /
``.lora_b``). The adapter stays a few MB and the shipped Q4_1 base stays untouched; the
student was trained on exactly that de-quantised base, so applying the adapter on it
reproduces training. The alternative, merging the adapter into a re-quantised copy of the
base (no per-token LoRA matmuls, but Q8_0 tensors: re-quantising to Q4_1 erases this small
an adapter), is :mod:`~fastreasonseg.reasoning.backends.gguf_merge`, which reads the
adapter through :func:`read_peft_lora` here.

Hand-written because the reference converter (``convert_lora_to_gguf.py`` in the
llama.cpp repository) is not shipped in any wheel and needs the base model's HF config;
this one reads what it needs from the base GGUF and uses the ``gguf`` package for names
and writing. Conventions follow that script: PEFT ``lora_A`` (r x in) and ``lora_B``
(out x r) are written as is; for the ``llama`` architecture the q/k projections' rows
are permuted as the HF-to-GGUF conversion permutes the base weights (only ``lora_B``
carries output rows); rsLoRA's ``alpha / sqrt(r)`` scale is expressed as an equivalent
``alpha`` because llama.cpp scales by ``alpha / r``. PEFT's per-module ``alpha_pattern``
has no GGUF equivalent and is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fastreasonseg.errors import FrsError
from fastreasonseg.io import atomic_path

if TYPE_CHECKING:
    import numpy as np

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


def open_gguf(path: str | Path):
    """A ``gguf.GGUFReader`` on ``path`` (memory-mapped); an unreadable file is an FrsError."""
    import gguf

    try:
        return gguf.GGUFReader(str(path))
    except (OSError, ValueError, KeyError, IndexError) as exc:  # missing file, bad magic, truncated file
        raise FrsError(f"cannot read GGUF {path}: {exc}") from None


@dataclass(frozen=True)
class LoraTensors:
    """A PEFT LoRA adapter in GGUF terms, for the base GGUF it was read against.

    ``pairs`` maps a base tensor (``blk.0.attn_q.weight``) to ``(lora_a, lora_b)`` as float32,
    ``lora_a`` (r x in), ``lora_b`` (out x r) with its rows already in the GGUF's order. The
    delta to add to that tensor is ``alpha / r * lora_b @ lora_a`` (``alpha`` in llama.cpp's
    convention, rsLoRA folded in).
    """

    arch: str
    alpha: float
    pairs: dict[str, tuple[np.ndarray, np.ndarray]]

    def scale(self, base_tensor: str) -> float:
        """What llama.cpp multiplies ``lora_b @ lora_a`` by: ``alpha / r``."""
        return self.alpha / self.pairs[base_tensor][0].shape[0]


def read_peft_lora(adapter_dir: str | Path, reader, base_name: str = "the base GGUF") -> LoraTensors:
    """Read ``adapter_dir`` (PEFT LoRA, safetensors) against the base model ``reader`` (a GGUFReader)."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    adapter_dir = Path(adapter_dir)
    try:
        config = json.loads((adapter_dir / "adapter_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise FrsError(f"cannot read {adapter_dir}/adapter_config.json: {exc}") from None
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise FrsError(f"adapter {adapter_dir} is {config.get('peft_type')}, only LoRA converts to llama.cpp")
    if config.get("use_dora") or config.get("modules_to_save"):
        raise FrsError(f"adapter {adapter_dir} uses DoRA or modules_to_save, which llama.cpp cannot apply; "
                       "use the transformers backend (--backend hf)")
    if config.get("alpha_pattern"):
        raise FrsError(f"adapter {adapter_dir} sets a per-module alpha_pattern, which a GGUF adapter cannot express; "
                       "use the transformers backend (--backend hf)")
    weights_path = adapter_dir / "adapter_model.safetensors"
    if not weights_path.is_file():
        raise FrsError(f"{weights_path} not found (only safetensors adapters convert to llama.cpp)")
    tensors = load_file(str(weights_path))

    arch = _field(reader, "general.architecture")
    n_blocks = _field(reader, f"{arch}.block_count")
    n_head = _field(reader, f"{arch}.attention.head_count")
    n_head_kv = _field(reader, f"{arch}.attention.head_count_kv") or n_head
    arch_enum = {name: enum for enum, name in gguf.MODEL_ARCH_NAMES.items()}.get(arch)
    if arch_enum is None or n_blocks is None:
        raise FrsError(f"{base_name} has an architecture ({arch!r}) the gguf package cannot map")
    names = gguf.get_tensor_name_map(arch_enum, int(n_blocks))
    base_tensors = {t.name for t in reader.tensors}

    by_module: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        if ".lora_A." in key or ".lora_B." in key:
            part = "a" if ".lora_A." in key else "b"
            module = key.replace("base_model.model.", "", 1).split(".lora_")[0]
            by_module.setdefault(module, {})[part] = value
        else:
            raise FrsError(f"adapter tensor {key!r} is not a LoRA A/B matrix; llama.cpp cannot apply it")
    if not by_module:
        raise FrsError(f"adapter {adapter_dir} holds no LoRA tensors")

    rank = int(config.get("r", 8))
    alpha = float(config.get("lora_alpha", rank))
    if config.get("use_rslora"):
        if config.get("rank_pattern"):
            raise FrsError(f"adapter {adapter_dir} combines rsLoRA with a rank_pattern, which a GGUF adapter "
                           "cannot express (one alpha for all modules); use the transformers backend (--backend hf)")
        alpha *= math.sqrt(rank)  # llama.cpp scales by alpha / r; rsLoRA means alpha / sqrt(r)
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for module, pair in sorted(by_module.items()):
        if set(pair) != {"a", "b"}:
            raise FrsError(f"adapter module {module} lacks its lora_A or lora_B matrix")
        tensor_name = names.get_name(module)
        if tensor_name is None or f"{tensor_name}.weight" not in base_tensors:
            raise FrsError(f"adapter targets {module}, which has no tensor in {base_name}")
        lora_a = np.ascontiguousarray(pair["a"], dtype=np.float32)
        lora_b = np.asarray(pair["b"], dtype=np.float32)
        if arch in _PERMUTED_QK_ARCHS and tensor_name.endswith(".attn_q"):
            lora_b = _permute_rows(lora_b, int(n_head))
        elif arch in _PERMUTED_QK_ARCHS and tensor_name.endswith(".attn_k"):
            lora_b = _permute_rows(lora_b, int(n_head_kv))
        pairs[f"{tensor_name}.weight"] = (lora_a, np.ascontiguousarray(lora_b))
    return LoraTensors(arch=str(arch), alpha=alpha, pairs=pairs)


def convert_peft_lora(adapter_dir: str | Path, base_gguf: str | Path, out_path: str | Path) -> Path:
    """Write ``adapter_dir`` (PEFT LoRA) as a GGUF LoRA adapter for the model in ``base_gguf``."""
    import gguf

    out_path = Path(out_path)
    lora = read_peft_lora(adapter_dir, open_gguf(base_gguf), Path(base_gguf).name)
    with atomic_path(out_path) as tmp:  # a failed conversion leaves no partial adapter behind
        writer = gguf.GGUFWriter(str(tmp), lora.arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, lora.alpha)
        for tensor_name, (lora_a, lora_b) in lora.pairs.items():
            writer.add_tensor(f"{tensor_name}.lora_a", lora_a)
            writer.add_tensor(f"{tensor_name}.lora_b", lora_b)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return out_path


def cache_dir() -> Path:
    root = os.environ.get("FRS_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache",
                                                           "fastreasonseg")
    return Path(root)


def adapter_digest(adapter_dir: str | Path):
    """A sha256 object fed with the adapter's config and weights (callers may add more before hashing)."""
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        path = Path(adapter_dir) / name
        if path.is_file():
            digest.update(path.read_bytes())
    return digest


def cached_file(kind: str, name: str, build: Callable[[Path], Path]) -> Path:
    """``cache_dir()/kind/name``, calling ``build(target)`` first when it is missing.

    A read-only home builds into the temp folder instead (redone per machine boot).
    """
    target = cache_dir() / kind / name
    if target.is_file():
        return target
    try:
        return build(target)
    except OSError:
        import tempfile

        fallback = Path(tempfile.gettempdir()) / f"fastreasonseg-{kind}" / name
        return fallback if fallback.is_file() else build(fallback)


def gguf_adapter_for(adapter_dir: str | Path, base_gguf: str | Path) -> Path:
    """The converted GGUF adapter for ``adapter_dir``, converting once and caching by content hash."""
    digest = adapter_digest(adapter_dir)
    digest.update(Path(base_gguf).name.encode())
    return cached_file("lora", f"{digest.hexdigest()[:20]}.gguf",
                       lambda target: convert_peft_lora(adapter_dir, base_gguf, target))
