"""Narrow a scene too big for the prompt to the objects a request can be about.

The twin serializer never drops an id: past its budget it lists the remaining ids in one
"also present" line. A scene of thousands of objects then overflows the model's context on
the id list alone, and a user gets an error instead of an answer. Before that happens the
engine keeps only candidates: objects whose label the request names (1-3 word phrases of
the request matched with :func:`fastreasonseg.twin.vocab.label_matches`, synonyms and
plurals included), then the most salient of the rest (largest area, highest score), as
many as fit the twin budget. The answer's ids are ids of the full twin, so masks are drawn
from it; the result says the scene was reduced (``RolloutResult.notes``).

The paper does not handle scenes this large (its twins come from OWLv2's top detections).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastreasonseg.twin.core import DigitalTwin

MIN_CANDIDATES = 8
_WORD = re.compile(r"[a-z][a-z'-]*")


def request_phrases(queries: Sequence[str], max_words: int = 3) -> set[str]:
    """Every run of 1..max_words words in the requests, lower case (candidate label names)."""
    phrases = set()
    for query in queries:
        words = _WORD.findall(query.lower())
        for size in range(1, max_words + 1):
            phrases.update(" ".join(words[i:i + size]) for i in range(len(words) - size + 1))
    return phrases


def candidate_order(twin: DigitalTwin, queries: Sequence[str]) -> list[int]:
    """Track ids, those whose label a request names first, then by salience (area x score), largest first."""
    from fastreasonseg.twin.vocab import label_matches

    phrases = request_phrases(queries)
    best: dict[int, tuple[float, str]] = {}
    for frame in twin.frames:
        for obj in frame.objects:
            salience = float(obj.area) * float(obj.score)
            if obj.id not in best or salience > best[obj.id][0]:
                best[obj.id] = (salience, obj.label)
    named = {label for _, label in best.values() if any(label_matches(p, label) for p in phrases)}
    return sorted(best, key=lambda i: (best[i][1] not in named, -best[i][0], i))


def narrow_for_prompt(twin: DigitalTwin, queries: Sequence[str], fits: Callable[[DigitalTwin], bool]
                      ) -> tuple[DigitalTwin, str | None]:
    """``twin`` itself when ``fits(twin)``; else the largest candidate subset that fits, and a note saying so."""
    if fits(twin):
        return twin, None
    order = candidate_order(twin, queries)
    low, high, best = MIN_CANDIDATES, len(order) - 1, MIN_CANDIDATES
    while low <= high:  # the largest k whose sub-twin fits (fitting shrinks monotonically with k)
        middle = (low + high) // 2
        if fits(twin.select(order[:middle])):
            best, low = middle, middle + 1
        else:
            high = middle - 1
    kept = order[:best]
    note = (f"scene reduced: {len(order)} objects are more than the prompt can list; kept {len(kept)} "
            "(those the request names, then the largest)")
    return twin.select(kept), note
