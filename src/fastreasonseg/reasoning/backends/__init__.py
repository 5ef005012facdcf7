"""LLM backends behind :class:`~fastreasonseg.reasoning.backends.base.ReasonerBackend`."""
