"""Loading perception models by hub id or local directory, with a clear error when they are missing.

``load_pretrained`` is the one code path every perception model goes through, in production
and in the tests (which save tiny random models to a folder and pass the folder):

1. a local directory loads from disk;
2. a hub id already in the Hugging Face cache loads with ``local_files_only=True``, so a
   cached model never waits on the network;
3. otherwise, when the hub is off limits (``HF_HUB_OFFLINE=1``, ``local_files_only``) or
   unreachable (one quick HEAD request, a few seconds at most), a :class:`ModelsMissingError`
   names every missing model id and says how to pre-download them or point at local copies —
   instead of a long network timeout and a stack trace.

Device ``"auto"`` picks CUDA, then Apple MPS, then the CPU, from what torch reports as
available; an explicitly requested device that is absent is an error, never a silent fallback.
The same holds for precision: :func:`resolve_dtype` gives the weights' dtype and
:func:`resolve_autocast` the bf16 autocast of the heavy passes, which ``auto`` turns on only on
a CPU with bf16 arithmetic.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from fastreasonseg.errors import FrsError

T = TypeVar("T")

# Where each model id can be replaced by a local path: (config field, CLI flag).
ROLE_OPTIONS: dict[str, tuple[str, str]] = {
    "detector": ("detector_model", "--detector"),
    "segmenter": ("segmenter_model", "--segmenter"),
    "depth": ("depth_model", "--depth-model"),
}

# Where the hub ids come from, for the missing-weights message.
PRESET_HINT = "--preset quality|fast (both use the same three checkpoints)"


class ModelsMissingError(FrsError):
    """Model weights are neither on disk nor downloadable; the message says how to fix that."""

    def __init__(self, missing: dict[str, str], reason: str):
        self.missing = dict(missing)
        ids = " ".join(sorted(set(missing.values())))
        lines = [f"perception model weights are not available ({reason}):"]
        for role, model_id in missing.items():
            field_name, flag = ROLE_OPTIONS.get(role, (role, f"--{role}"))
            lines.append(f"  - {role}: {model_id!r} (config field {field_name}, CLI flag {flag})")
        lines += [
            "To fix, either:",
            f"  * on a machine with internet access run `hf download {ids}`"
            " (older huggingface_hub: `huggingface-cli download <id>` per model), then copy the cache folder"
            " (HF_HOME, default ~/.cache/huggingface) to this machine and set HF_HOME to it; or",
            "  * download each model into a folder (`hf download <id> --local-dir DIR`) and pass the folder"
            " instead of the id, e.g. `--detector DIR --segmenter DIR --depth-model DIR`"
            " or the config fields detector_model / segmenter_model / depth_model.",
            "  Depth is optional: `--depth-model none` builds twins without depth.",
            f"  The ids come from the perception preset ({PRESET_HINT}); every model id can be overridden.",
        ]
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------- device / dtype


def resolve_device(device: str = "auto") -> str:
    """Turn ``"auto"`` into the best available device; check that a requested device exists."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise FrsError(f"device {device!r} was requested but torch sees no CUDA GPU; use --device cpu or auto")
        return device
    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise FrsError("device 'mps' was requested but torch reports no Apple MPS backend; use --device cpu or auto")
        return device
    if device != "cpu":
        raise FrsError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    """The torch dtype for ``dtype`` on ``device``; float16 on the CPU is refused (many CPU kernels lack it).

    ``"auto"`` is half precision (float16) on CUDA, where it halves memory and time, and float32
    elsewhere: bfloat16 on a CPU is opt-in, because whether it wins depends on the CPU.
    """
    import torch

    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype == "auto":
        dtype = "float16" if device.startswith("cuda") else "float32"
    if dtype not in table:
        raise FrsError(f"unknown dtype {dtype!r}; use auto or one of {', '.join(table)}")
    if dtype == "float16" and device == "cpu":
        raise FrsError("dtype float16 is not supported on the CPU; use float32 or bfloat16")
    return table[dtype]


def resolve_autocast(autocast: str, device: str, *, cpuinfo: str | None = None) -> Any:
    """The dtype the models' heavy passes autocast to on ``device`` (``torch.bfloat16``), or None (no autocast).

    ``"auto"`` is bfloat16 on a CPU with bf16 arithmetic (:func:`fastreasonseg.hardware.cpu_has_bf16`)
    and off everywhere else: on CUDA the weights are already float16 (dtype ``auto``), and on a
    CPU without bf16 arithmetic a bf16 matmul is ~40x slower than float32. Asking for
    ``"bfloat16"`` on such a CPU is therefore an error rather than a silent slowdown. ``cpuinfo``
    replaces this machine's /proc/cpuinfo (tests).
    """
    import torch

    from fastreasonseg.hardware import cpu_has_bf16

    if autocast == "off":
        return None
    if autocast not in ("auto", "bfloat16"):
        raise FrsError(f"unknown autocast {autocast!r}; use auto, off or bfloat16")
    if device == "cpu":
        native = cpu_has_bf16(cpuinfo)
        if autocast == "auto":
            return torch.bfloat16 if native else None  # unknown flags (not Linux): stay in float32
        if native is False:
            raise FrsError("autocast bfloat16 needs a CPU with bf16 arithmetic (AVX-512-BF16 or AMX); this one has "
                           "neither, so it would run about 40x slower than float32. Use autocast auto or off.")
        return torch.bfloat16
    if autocast == "auto":
        return None  # CUDA keeps its float16 weights, MPS its float32
    if device.startswith("cuda"):
        return torch.bfloat16
    raise FrsError(f"autocast bfloat16 is for CPUs with bf16 arithmetic and CUDA GPUs, not {device!r}; "
                   "use autocast off")


def dtype_name(dtype: Any) -> str:
    """How reports and twin metadata name a resolved dtype: ``"bfloat16"`` for ``torch.bfloat16``, ``"off"`` for None."""
    return "off" if dtype is None else str(dtype).removeprefix("torch.")


def autocast_context(device: str, autocast_dtype: Any) -> AbstractContextManager:
    """``torch.autocast`` to ``autocast_dtype`` on ``device``'s type, or a no-op when it is None.

    Without the weight-cast cache: these encoders use each weight once per pass, so the cache
    saves no casts, but it would hold a bf16 copy of every weight until the pass ends (OWLv2's
    ViT-B/16 alone: ~170 MB on top of the float32 weights, against the fast preset's 1.5 GB budget).
    """
    if autocast_dtype is None:
        return nullcontext()
    import torch

    return torch.autocast(device.split(":")[0], dtype=autocast_dtype, cache_enabled=False)


# --------------------------------------------------------------------------- availability


def hub_offline() -> bool:
    """True when the user told huggingface_hub/transformers never to go online."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


def is_local_path(model_id: str) -> bool:
    """Whether ``model_id`` names a folder on disk rather than a hub repo."""
    if Path(model_id).expanduser().exists():
        return True
    # Hub ids are "name" or "owner/name"; anything else with separators is meant as a path.
    return model_id.startswith((".", "/", "~")) or model_id.count("/") > 1 or "\\" in model_id


def is_cached(model_id: str) -> bool:
    """Whether the hub id's config is in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(model_id, "config.json")
    except Exception:  # invalid repo ids raise validation errors; treat as "not cached"
        return False
    return isinstance(found, str)


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """One quick HEAD request to the hub endpoint (respects HF_ENDPOINT and proxy settings)."""
    import httpx
    from huggingface_hub import constants

    try:
        httpx.head(constants.ENDPOINT, timeout=timeout_s, follow_redirects=True)
    except httpx.HTTPError:
        return False
    return True


def check_models_available(models: dict[str, str | None], *, local_files_only: bool = False) -> None:
    """Raise one :class:`ModelsMissingError` naming every model that cannot be loaded.

    ``models`` maps a role (detector, segmenter, depth) to a hub id or a local folder
    (None: not needed). Local folders must exist; hub ids must be cached unless the hub can
    be reached and downloads are allowed.
    """
    missing_dirs = {role: ref for role, ref in models.items() if ref and is_local_path(ref)
                    and not Path(ref).expanduser().is_dir()}
    if missing_dirs:
        listed = ", ".join(f"{role}: {ref}" for role, ref in missing_dirs.items())
        raise FrsError(f"model folder not found ({listed}); pass an existing folder or a hub id")
    missing = {role: ref for role, ref in models.items() if ref and not is_local_path(ref) and not is_cached(ref)}
    if not missing:
        return
    if local_files_only:
        raise ModelsMissingError(missing, "local_files_only is set and they are not in the local cache")
    if hub_offline():
        raise ModelsMissingError(missing, "HF_HUB_OFFLINE is set and they are not in the local cache")
    if not hub_reachable():
        raise ModelsMissingError(missing, "they are not in the local cache and the Hugging Face hub is unreachable")


def load_pretrained(load: Callable[..., T], model_id: str, *, role: str, local_files_only: bool = False,
                    **kwargs: Any) -> T:
    """Call ``load(model_id, **kwargs)`` (a ``from_pretrained``) the offline-safe way described above."""
    from transformers.utils import logging as hf_logging

    check_models_available({role: model_id}, local_files_only=local_files_only)
    source = str(Path(model_id).expanduser()) if is_local_path(model_id) else model_id
    offline = local_files_only or hub_offline() or is_local_path(model_id) or is_cached(model_id)
    # transformers draws a "Loading weights" bar per model; three per twin build are noise (and
    # tear the twin-build progress bar). Only silenced when nothing is downloaded, because the
    # switch also hides huggingface_hub's download progress.
    bars_were_on = hf_logging.is_progress_bar_enabled()
    if offline:
        hf_logging.disable_progress_bar()
    try:
        return load(source, local_files_only=offline, **kwargs)
    except OSError as exc:
        # A cached or local model with a file missing, or a download that failed midway.
        raise FrsError(f"cannot load the {role} model {model_id!r}: {exc}".rstrip()) from None
    except (ValueError, KeyError) as exc:
        raise FrsError(f"{model_id!r} does not look like a {role} model this toolkit can use "
                       f"({type(exc).__name__}: {exc})") from None
    finally:
        if bars_were_on and not hf_logging.is_progress_bar_enabled():
            hf_logging.enable_progress_bar()


def models_for(config: Any, roles: Iterable[str]) -> dict[str, str | None]:
    """The {role: model id} a config needs for the given roles (depth omitted when disabled)."""
    table = {"detector": config.detector_model, "segmenter": config.segmenter_model, "depth": config.depth_model}
    return {role: table[role] for role in roles if table[role]}
