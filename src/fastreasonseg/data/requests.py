"""Surface variety of requests: how real people type what the query templates say.

The query builders write grammatical requests from templates; people write "hey can u find
the thing to cut bread with", drop punctuation, mistype a word or put it in the first
person. :func:`vary_request` rewrites a generated request that way with probability
``share`` (a seeded choice, so items stay deterministic): one or two of a casual opener, a
first-person frame, a polite ending, lower case without the final punctuation, and one typo
(a swapped, dropped or doubled letter in a word of five or more letters). Words of
``protect`` (the phrase the teacher will pass to the knowledge tool) are never mistyped, so a
chain still quotes its request. None of this changes what the request refers to.

Departure from the paper: the paper's requests come from annotators (ReasonSeg, ReVOS);
synthetic requests need this noise added to stand in for them.
"""

from __future__ import annotations

import re

import numpy as np

OPENERS = ("hey, ", "hi, ", "um, ", "ok so ", "quick question: ", "so ", "hmm, ")
FRAMES = ("I'm looking for {r}", "I need {r}", "could you find {r}", "can you show me {r}", "help me find {r}",
          "I want {r}", "where is {r}")
NOUN_STARTS = ("the ", "a ", "an ", "all ", "every", "something", "whatever", "those ", "that ", "any")
ENDINGS = (" please", ", thanks", " pls", "?", " thx")
_WORD = re.compile(r"[A-Za-z]{5,}")


def _lowercase_start(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != "I " else text


def _typo(text: str, rng: np.random.Generator, protect: set[str]) -> str:
    words = [m for m in _WORD.finditer(text) if m.group(0).lower() not in protect]
    if not words:
        return text
    match = words[int(rng.integers(len(words)))]
    word = match.group(0)
    i = int(rng.integers(1, len(word) - 1))
    kind = int(rng.integers(3))
    if kind == 0:
        changed = word[:i] + word[i + 1] + word[i] + word[i + 2:]
    elif kind == 1:
        changed = word[:i] + word[i + 1:]
    else:
        changed = word[:i] + word[i] + word[i:]
    return text[: match.start()] + changed + text[match.end():]


def vary_request(text: str, rng: np.random.Generator, *, share: float = 0.3, protect: str = "") -> str:
    """``text`` as a person might type it (with probability ``share``), else unchanged."""
    if share <= 0 or rng.random() >= share:
        return text
    protected = {w.lower() for w in re.findall(r"[A-Za-z]+", protect)}
    out = text.strip()
    choices = rng.permutation(5)[: 1 + int(rng.random() < 0.4)]
    # The frame goes first (it wraps a noun phrase), the opener before everything.
    for choice in sorted((int(c) for c in choices), key=(1, 0, 2, 3, 4).index):
        if choice == 0:
            out = OPENERS[int(rng.integers(len(OPENERS)))] + _lowercase_start(out)
        elif choice == 1 and out.lower().startswith(NOUN_STARTS) and not any(c in out for c in ";,"):
            body = _lowercase_start(out).rstrip(".?!")
            out = FRAMES[int(rng.integers(len(FRAMES)))].format(r=body)
        elif choice == 2:
            out = out.rstrip(".?!") + ENDINGS[int(rng.integers(len(ENDINGS)))]
        elif choice == 3:
            out = out.lower().rstrip(".?!")
        elif choice == 4:
            out = _typo(out, rng, protected)
    return out
