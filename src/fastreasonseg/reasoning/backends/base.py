"""The one small interface every reasoner backend implements.

A rollout is a chat (system + user messages) followed by a partial assistant turn that
grows as the model generates and the runtime inserts tool results. Backends therefore
take the messages plus the ``assistant_prefix`` written so far and return the
continuation up to a stop string. Local backends keep a prefix KV cache keyed by tokens,
so resuming after ``</plan>`` or asking a second query about the same twin re-encodes
only what changed; remote backends continue the assistant message server-side.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": str}


@dataclass
class Generation:
    """One continuation. ``text`` includes the stop string when generation stopped on one."""

    text: str
    stop_reason: Literal["stop", "length", "eos", "error"]
    prompt_tokens: int = 0
    new_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens served from a prefix cache instead of re-encoded
    seconds: float = 0.0
    error: str | None = None  # set when stop_reason == "error" (e.g. endpoint unreachable)
    # Where ``seconds`` went, for backends that measure it (llama.cpp: prompt, prefill, decode, grammar, detokenize).
    timing: dict[str, float] = field(default_factory=dict)


@dataclass
class GenerationRequest:
    messages: list[Message]
    assistant_prefix: str = ""
    stop: Sequence[str] = ()
    max_new_tokens: int = 256
    temperature: float = 0.0
    seed: int | None = None
    extra: dict = field(default_factory=dict)


class ReasonerBackend(ABC):
    """Generates assistant continuations. Greedy when ``temperature == 0``."""

    name: str = "backend"
    adapter: str | None = None  # the adapter applied to the model, if any (set by the loader)
    supports_batching: bool = False  # True when complete_many runs requests concurrently
    supports_grammar: bool = False  # True when GenerationRequest.extra["grammar"] (GBNF) constrains decoding

    @abstractmethod
    def complete(self, request: GenerationRequest) -> Generation:
        """Continue ``request.assistant_prefix`` after the chat ``request.messages``."""

    def complete_many(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Independent requests; backends that can batch override this."""
        return [self.complete(r) for r in requests]

    def count_tokens(self, text: str) -> int | None:
        """Tokens ``text`` costs this model, or None when the backend has no tokenizer at hand."""
        return None

    def clear_cache(self) -> None:  # noqa: B027 - optional hook, only backends with a prefix cache have one
        """Forget any cached prefix (benchmarks use this to measure re-encoding)."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to release
        """Release resources (threads, sessions, model memory)."""
