"""The one way to build a rollout engine: a reasoner (spec, config or loaded backend) + rollout settings.

Every caller — ``frs segment``, ``frs eval``, ``frs demo``, ``frs serve``, the benchmarks and
the teacher — builds its engine here, so the rules below hold everywhere and the same twin,
query and adapter always give the same prompt::

    from fastreasonseg.reasoning.factory import build_engine
    engine = build_engine("default")                          # embedded student + shipped adapter
    engine = build_engine(ReasonerConfig("base", threads=2), max_new_tokens=320)
    engine = build_engine(backend, rollout_config)            # an already loaded backend

Rules owned here (and by :meth:`RolloutConfig.resolved`, which the engine applies):

- worked examples (few-shot) only for a base model: when no distilled adapter is applied,
  unless a caller forces ``few_shot`` (a base-LLM teacher, ablations);
- the per-turn token budget is ``min(256, max_new_tokens)`` unless given;
- the twin text budget is :data:`~fastreasonseg.reasoning.engine.DEFAULT_TWIN_TOKENS` unless given;
- decode threads come from :class:`~fastreasonseg.reasoning.loader.ReasonerConfig` and reach the loader.

The paper has no such component; it is this project's seam between configuration and runtime.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastreasonseg.reasoning.backends.base import ReasonerBackend
from fastreasonseg.reasoning.engine import RolloutConfig, RolloutEngine
from fastreasonseg.reasoning.loader import ReasonerConfig, load_reasoner


def build_engine(reasoner: ReasonerConfig | ReasonerBackend | str | None = None,
                 rollout: RolloutConfig | None = None, *, prompt: Any | None = None,
                 **overrides: Any) -> RolloutEngine:
    """A ready :class:`RolloutEngine`.

    ``reasoner``: a spec string (``"default"``, ``"base"``, a hub id, a folder, a ``.gguf``,
    ``openai:MODEL@URL``), a :class:`ReasonerConfig`, or a loaded backend (wrappers and tests).
    ``rollout``: the base :class:`RolloutConfig`; ``overrides`` replace single fields of it
    (``max_new_tokens=320``). Raises :class:`~fastreasonseg.errors.FrsError` when the reasoner
    cannot load and ``ValueError`` for an unknown or invalid rollout field.
    """
    config = rollout or RolloutConfig()
    if overrides:  # checked before the model loads: a bad setting must not cost a load
        unknown = sorted(set(overrides) - set(RolloutConfig.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown rollout settings {unknown}; known: {sorted(RolloutConfig.__dataclass_fields__)}")
        config = replace(config, **overrides)
    backend = reasoner if isinstance(reasoner, ReasonerBackend) else load_reasoner(_reasoner_config(reasoner))
    return RolloutEngine(backend, config, prompt=prompt)


def _reasoner_config(reasoner: ReasonerConfig | str | None) -> ReasonerConfig:
    if reasoner is None:
        return ReasonerConfig()
    if isinstance(reasoner, str):
        return ReasonerConfig(spec=reasoner)
    return reasoner
