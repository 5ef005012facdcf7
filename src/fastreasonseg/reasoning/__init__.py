"""Reasoning over a digital twin: the rollout protocol, the engine that runs DT tools mid-generation, and LLM backends.

Public API (heavy libraries load only inside the functions that need them)::

    from fastreasonseg.reasoning.factory import build_engine
    engine = build_engine("default")                             # embedded SmolLM2 + shipped adapter, offline
    result = engine.run(twin, "the cup nearest to the camera")   # RolloutResult: text, answer_ids, failures
    results = engine.run_many(twin, queries)                     # shared twin prefix, batched when possible

Modules: :mod:`~.protocol` (parse/build rollouts, failure codes, results spans for SFT),
:mod:`~.prompt` (the one prompt layout), :mod:`~.engine` (pause at ``</plan>``, tools,
resume), :mod:`~.factory` (the one way to build an engine), :mod:`~.grammar`
(protocol-constrained decoding), :mod:`~.backends` (transformers, llama.cpp,
OpenAI-compatible HTTP), :mod:`~.loader` (spec strings). Turning answers into masks and
files is the pipeline's job (:mod:`fastreasonseg.pipeline`); the reasoning benchmark is
:mod:`fastreasonseg.eval.reasoning_bench`. This package imports neither perception nor data.
"""
