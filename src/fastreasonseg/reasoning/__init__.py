"""Reasoning over a digital twin: the rollout protocol, the engine that runs DT tools mid-generation, and LLM backends."""
