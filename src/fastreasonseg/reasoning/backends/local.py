"""Pieces shared by the in-process backends (transformers, llama.cpp): stop strings, prefix matching, chat rendering.

Both backends keep exactly one token sequence in their KV cache and, for every request,
reuse its longest common token prefix with the new prompt. That one rule covers both
reuse cases the runtime needs: resuming a rollout after ``</plan>`` (the whole previous
prompt plus generation is a prefix) and the next query on the same twin (everything up
to the query text is a prefix, because the prompt puts the twin before the query).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from fastreasonseg.reasoning.backends.base import Message


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def reusable_prefix(cached: Sequence[int], prompt: Sequence[int]) -> int:
    """How many cached tokens can serve ``prompt``: the common prefix, minus one if it is the whole prompt.

    At least one prompt token must be fed to the model to get next-token logits, so a
    prompt that is entirely cached still re-feeds its last token.
    """
    keep = common_prefix_length(cached, prompt)
    return min(keep, len(prompt) - 1) if prompt else 0


def find_stop(text: str, stops: Sequence[str], search_from: int = 0) -> int:
    """End index of the earliest stop string in ``text`` starting at or after ``search_from``; -1 if none.

    Callers pass ``search_from = previous_length - max_stop_length`` so each new token
    costs a scan of only the tail instead of the whole text.
    """
    best = -1
    for stop in stops:
        if not stop:
            continue
        at = text.find(stop, max(0, search_from))
        if at >= 0 and (best < 0 or at + len(stop) < best):
            best = at + len(stop)
    return best


def render_chat_template(template: str, messages: list[Message], *, add_generation_prompt: bool = True,
                         bos_token: str = "", eos_token: str = "", **kwargs) -> str:
    """Render a Hugging Face chat template (Jinja) the way transformers does, without loading a tokenizer.

    Used by the llama.cpp backend, whose GGUF carries the same template the transformers
    tokenizer reads, so both backends see byte-identical prompts. The sandboxed
    environment is what transformers uses; templates are data, never trusted code.
    """
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise ValueError(f"chat template error: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = raise_exception
    env.filters["tojson"] = lambda value, indent=None, **_: json.dumps(value, indent=indent, ensure_ascii=False)
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                            bos_token=bos_token, eos_token=eos_token, **kwargs)
