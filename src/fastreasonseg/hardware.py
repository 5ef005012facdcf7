"""What this machine's CPU computes fast: one reading of its flags, shared by training and perception.

bf16 pays on a CPU only with bf16 arithmetic (AVX-512-BF16 or AMX): there oneDNN runs bf16
matmuls natively (on this project's AVX-512-BF16 AMD EPYC 4.4x faster than float32, 803 vs
183 GFLOP/s), elsewhere PyTorch falls back to a reference GEMM about 40x slower than float32
(an AVX2-only AMD EPYC: 1.3 vs 56 GFLOP/s). So ``frs sft`` / ``frs rl`` refuse ``bf16=true``
without it (:func:`check_bf16`) and the ``fast`` perception preset autocasts to bf16 only with it
(:func:`fastreasonseg.perception.loading.resolve_autocast`).

Nothing heavy is imported here (torch only inside :func:`check_bf16`), so any stage can import it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastreasonseg.errors import FrsError

# /proc/cpuinfo flags of native bf16 arithmetic (x86: AVX-512-BF16, AMX).
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@lru_cache(maxsize=1)
def _proc_cpuinfo() -> str | None:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None  # not Linux


def cpu_has_bf16(cpuinfo: str | None = None) -> bool | None:
    """Whether the CPU has bf16 arithmetic, from ``cpuinfo`` (default: this machine's /proc/cpuinfo).

    None when the flags cannot be read (not Linux): the caller decides what "unknown" means.
    """
    flags = cpuinfo if cpuinfo is not None else _proc_cpuinfo()
    if flags is None:
        return None
    return any(flag in flags for flag in BF16_FLAGS)


def check_bf16(requested: bool, cpuinfo: str | None = None) -> None:
    """Refuse bf16 autocast for training on a CPU without bf16 arithmetic (see the module docstring)."""
    if not requested:
        return
    import torch

    if torch.cuda.is_available():
        return
    if cpu_has_bf16(cpuinfo) is False:  # None: cannot tell, trust the user
        raise FrsError("bf16=true needs a CPU with bf16 arithmetic (AVX-512-BF16 or AMX); this one has neither, "
                       "so bf16 would train about 40x slower than float32. Set bf16=false.")


def cpu_flags_digest(cpuinfo: str | None = None) -> str | None:
    """sha256 of the CPU's sorted instruction-set flags (the first ``flags`` line), None when unreadable.

    Two machines with one digest run the same compiled kernels; the llama.cpp set-up records it
    (:mod:`fastreasonseg.reasoning.backends.llamacpp_build`).
    """
    import hashlib

    text = cpuinfo if cpuinfo is not None else _proc_cpuinfo()
    for line in (text or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, ARM
            return hashlib.sha256(" ".join(sorted(value.split())).encode()).hexdigest()
    return None
