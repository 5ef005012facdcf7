"""Reasoning over a digital twin: the rollout protocol, the engine that runs DT tools mid-generation, and LLM backends.

Public API (heavy libraries load only inside the functions that need them)::

    from fastreasonseg.reasoning.loader import ReasonerConfig, load_reasoner
    from fastreasonseg.reasoning.engine import RolloutConfig, RolloutEngine
    backend = load_reasoner(ReasonerConfig("default"))      # embedded SmolLM2 (+ shipped adapter), offline
    engine = RolloutEngine(backend, RolloutConfig(few_shot=backend.adapter is None))
    result = engine.run(twin, "the cup nearest to the camera")   # RolloutResult: text, answer_ids, failures
    results = engine.run_many(twin, queries)                     # shared twin prefix, batched when possible

Modules: :mod:`~.protocol` (parse/build rollouts, failure codes, results spans for SFT),
:mod:`~.prompt` (the one prompt layout), :mod:`~.engine` (pause at ``</plan>``, tools,
resume), :mod:`~.grammar` (protocol-constrained decoding), :mod:`~.backends` (transformers,
llama.cpp, OpenAI-compatible HTTP), :mod:`~.loader` (spec strings), :mod:`~.segment`
(answers to masks, result.json, overlays; ``frs segment``), :mod:`~.bench`
(``frs bench reasoning``).
"""
