"""Several token sequences in one llama.cpp context: which sequence serves which prompt, and batched evaluation.

:class:`KVSequences` mirrors, as one token list per llama.cpp sequence id, exactly what the KV
cache holds, and keeps that true: before a batch every sequence is trimmed to the prefix its
new prompt reuses (``llama_memory_seq_rm``), a prefix shared by several prompts is evaluated
once and copied into the other sequences (``llama_memory_seq_cp``), :meth:`KVSequences.prefill`
evaluates only what no sequence holds, and :meth:`KVSequences.step` advances all sequences in one
``llama_decode``.

The context is built with ``kv_unified=False``: each sequence gets its own ``n_ctx / n_seq_max``
cells (a "stream") and attends only to them, so a prefilled sequence's logits are bit-for-bit
those of a one-sequence context and never depend on the other sequences. The price is
that a copied prefix is stored once per sequence, and a copy between streams copies the whole
stream buffer (llama.cpp allows nothing else across streams); both are small next to
re-encoding the prefix. A unified cache stores the prefix once but attends over every
sequence's cells with a mask, which changed greedy tokens here. Decode steps of several
sequences differ slightly from a lone sequence's (see ``llamacpp.py``).

Which sequence serves which prompt (:func:`assign_sequences`) is greedy on the longest
reusable prefix, so a rollout resumed after ``</plan>`` lands on the sequence holding its own
earlier turn, and a new query lands on one holding the twin.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from fastreasonseg.reasoning.backends.local import common_prefix_length, reusable_prefix

# llama.cpp's CPU kernels compute a one-row matrix product along another path than several rows
# (SmolLM2 Q4_1 here: next-token logits moved by up to ~0.8), so a prompt's last logits would
# depend on how much of it happened to be cached. Every prompt therefore feeds at least this many
# tokens, one sequence per llama_decode, and a long prompt's last chunk is never a lone token.
MIN_PREFILL = 2


def fed_from(prompt_length: int, cached: int) -> int:
    """How many of the ``cached`` prompt tokens to keep so that at least :data:`MIN_PREFILL` are fed."""
    return max(0, min(cached, prompt_length - MIN_PREFILL))


def assign_sequences(cached: Sequence[Sequence[int]], prompts: Sequence[Sequence[int]],
                     reuse: bool = True) -> list[tuple[int, int]]:
    """For each prompt, ``(sequence id, cached tokens it reuses)``; each sequence serves one prompt.

    Greedy on the reusable prefix (:func:`reusable_prefix`), largest first; among equal
    matches the sequence holding the fewest tokens is overwritten, keeping longer caches for
    later. ``reuse=False`` reuses nothing (the re-encoding baseline).
    """
    if len(prompts) > len(cached):
        raise ValueError(f"{len(prompts)} prompts for {len(cached)} sequences")
    pairs = sorted(((fed_from(len(prompt), reusable_prefix(tokens, prompt)) if reuse else 0, len(tokens), seq, index)
                    for seq, tokens in enumerate(cached) for index, prompt in enumerate(prompts)),
                   key=lambda pair: (-pair[0], pair[1], pair[2], pair[3]))
    chosen: list[tuple[int, int] | None] = [None] * len(prompts)
    used: set[int] = set()
    for keep, _, seq, index in pairs:
        if chosen[index] is None and seq not in used:
            chosen[index] = (seq, keep)
            used.add(seq)
    return [c for c in chosen if c is not None]


@dataclass(frozen=True)
class SharePlan:
    """How a batch's common prefix is encoded once: ``source`` evaluates ``prompts[source][cached:end]``
    first, then every prompt in ``copies`` takes its first ``copies[i]`` tokens from the source's sequence."""

    source: int
    end: int
    copies: dict[int, int]


def share_prefix(prompts: Sequence[Sequence[int]], cached: Sequence[int]) -> SharePlan:
    """The plan for prompts whose own caches (``cached[i]`` tokens each) hold less than they share.

    The source is the prompt with the most cached tokens. A prompt copies from it when the
    prefix the two share (leaving each :data:`MIN_PREFILL` tokens to evaluate) is longer than
    what its own sequence already holds.
    """
    source = max(range(len(prompts)), key=lambda i: cached[i])
    lead = prompts[source]
    copies = {}
    for index, prompt in enumerate(prompts):
        if index == source:
            continue
        shared = min(fed_from(len(prompt), common_prefix_length(prompt, lead)), fed_from(len(lead), len(lead)))
        if shared > cached[index]:
            copies[index] = shared
    return SharePlan(source=source, end=max([cached[source], *copies.values()]), copies=copies)


class KVSequences:
    """The token lists of a context's sequences, and the calls that change them together with the cache.

    ``tokens[s]`` is exactly what sequence ``s`` holds at positions ``0..len-1``. A failed
    decode leaves the cache uncertain, so callers :meth:`clear` after any error.
    """

    def __init__(self, ctx, n_seq: int, n_batch: int, n_vocab: int):
        import llama_cpp

        self.ctx = ctx
        self.memory = llama_cpp.llama_get_memory(ctx)
        self.n_seq = n_seq
        self.n_batch = n_batch
        self.n_vocab = n_vocab
        self.n_ctx_seq = int(llama_cpp.llama_n_ctx_seq(ctx))
        self.tokens: list[list[int]] = [[] for _ in range(n_seq)]
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)

    def clear(self) -> None:
        """Empty every sequence (metadata only: llama.cpp overwrites cells it hands out again)."""
        import llama_cpp

        llama_cpp.llama_memory_clear(self.memory, False)
        self.tokens = [[] for _ in range(self.n_seq)]

    def trim(self, seq: int, keep: int) -> None:
        """Drop everything sequence ``seq`` holds from position ``keep`` on."""
        import llama_cpp

        if not llama_cpp.llama_memory_seq_rm(self.memory, seq, keep, -1):
            raise RuntimeError(f"llama.cpp could not trim sequence {seq} to {keep} tokens")
        del self.tokens[seq][keep:]

    def copy(self, source: int, target: int, keep: int) -> None:
        """Make sequence ``target`` hold the first ``keep`` tokens of sequence ``source``.

        Across streams llama.cpp copies only whole sequences (any other range aborts the
        process), so the whole source is copied and the target trimmed after.
        """
        import llama_cpp

        llama_cpp.llama_memory_seq_cp(self.memory, source, target, -1, -1)
        self.tokens[target] = list(self.tokens[source])
        self.trim(target, keep)

    def prefill(self, seq: int, tokens: Sequence[int], logits: bool = True):
        """Evaluate ``tokens`` after what sequence ``seq`` holds, in chunks of ``n_batch`` (never a lone last token).

        Returns a copy of the logits after the last token (None without ``logits`` or tokens).
        Raises RuntimeError when llama.cpp fails.
        """
        n = len(tokens)
        bounds = [*range(0, n, self.n_batch), n]
        if len(bounds) > 2 and n - bounds[-2] < MIN_PREFILL:  # shift the lone token's neighbour into its chunk
            bounds[-2] = n - MIN_PREFILL
        row = None
        for lo, hi in itertools.pairwise(bounds):
            row = self._decode([(seq, tokens[lo:hi])], logits and hi == n)[0]
        return row

    def step(self, pieces: Sequence[tuple[int, Sequence[int]]]) -> list:
        """One ``llama_decode`` of each ``(sequence, tokens)`` after what it holds; the logits after each piece."""
        if len({seq for seq, _ in pieces}) < len(pieces):
            raise ValueError("step takes at most one piece per sequence")
        if sum(len(tokens) for _, tokens in pieces) > self.n_batch:
            raise ValueError(f"step takes at most n_batch={self.n_batch} tokens")
        return self._decode(pieces, True)

    def _decode(self, pieces: Sequence[tuple[int, Sequence[int]]], logits: bool) -> list:
        import llama_cpp
        import numpy as np

        batch = self._batch
        outputs = []
        b = 0
        for k, (seq, tokens) in enumerate(pieces):
            held = len(self.tokens[seq])
            for j, token in enumerate(tokens):
                batch.token[b], batch.pos[b], batch.n_seq_id[b] = token, held + j, 1
                batch.seq_id[b][0] = seq
                batch.logits[b] = logits and j == len(tokens) - 1
                if batch.logits[b]:
                    outputs.append((k, b))
                b += 1
        if b == 0:
            return [None] * len(pieces)
        batch.n_tokens = b
        code = llama_cpp.llama_decode(self.ctx, batch)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")
        rows: list = [None] * len(pieces)
        for k, index in outputs:
            rows[k] = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.ctx, index),
                                            shape=(self.n_vocab,)).copy()
        for seq, tokens in pieces:
            self.tokens[seq].extend(tokens)
        return rows

    def close(self) -> None:
        import llama_cpp

        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
