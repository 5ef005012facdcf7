"""The words of the knowledge base: each category's name, plural, synonyms, group and kind-of links.

The knowledge base (``knowledge/categories.yaml`` beside this module) is the one place
that says which words name which object category. Two layers read it:

- the DT tools' label matching (:mod:`.vocab`) needs only the words, read here;
- the synthetic-data generator (:mod:`fastreasonseg.data.knowledge`) reads every field
  (uses, facts, colours, sizes, places...) and builds on :func:`parse_words` for these.

The file lives in the twin layer because the twin is the lowest layer and must not import
``fastreasonseg.data``. This module checks the word fields' types; whether the words agree
with each other (no synonym naming two categories...) is :func:`.vocab.vocabulary_conflicts`.

Word fields of an entry (all but ``name`` and ``group`` optional):

- ``plural``: only when not the regular English plural (:func:`regular_plural`);
- ``synonyms``: other words for exactly this category ("sofa" for couch);
- ``kind_of``: broader words it is a kind of, a category ("mug": cup) or not ("lion": big cat);
- ``kinds``: narrower words for kinds of it that are not categories ("person": man, woman).

The paper does not describe label matching or its vocabulary.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KNOWLEDGE_FILE = Path(__file__).with_name("knowledge") / "categories.yaml"
WORD_FIELDS: frozenset[str] = frozenset({"name", "plural", "synonyms", "group", "kind_of", "kinds"})


class LexiconError(ValueError):
    """The knowledge file cannot be read, or its word fields are malformed (each problem is named)."""


@dataclass(frozen=True)
class Words:
    """The words of one category. ``plural`` is always filled (regular plural when the file has none)."""

    name: str
    group: str
    plural: str
    synonyms: tuple[str, ...] = ()
    kind_of: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()


def regular_plural(noun: str) -> str:
    """English plural of the last word of ``noun`` by the regular rules (irregulars live in the YAML)."""
    head, _, last = noun.rpartition(" ")
    if last.endswith(("s", "x", "ch", "sh", "z")):
        last += "es"
    elif last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}" if head else last


def string_list(value: Any, where: str, errors: list[str]) -> tuple[str, ...]:
    """A YAML list of non-empty strings as a stripped tuple (None -> empty); a problem is appended to ``errors``."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        errors.append(f"{where}: expected a list of non-empty strings, got {value!r}"[:200])
        return ()
    return tuple(v.strip() for v in value)


def parse_words(entry: Any, where: str, errors: list[str]) -> Words | None:
    """The word fields of one YAML entry; problems are appended to ``errors`` (None when unusable)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
        errors.append(f"{where}: expected a mapping with a string 'name'")
        return None
    name = entry["name"].strip()
    where = f"category {name!r}"
    group = entry.get("group")
    if not isinstance(group, str) or not group:
        errors.append(f"{where}.group: expected a string")
        return None
    plural = entry.get("plural", "")
    if not isinstance(plural, str):
        errors.append(f"{where}.plural: expected a string")
        plural = ""
    return Words(name=name, group=group, plural=plural.strip() or regular_plural(name),
                 synonyms=string_list(entry.get("synonyms"), f"{where}.synonyms", errors),
                 kind_of=string_list(entry.get("kind_of"), f"{where}.kind_of", errors),
                 kinds=string_list(entry.get("kinds"), f"{where}.kinds", errors))


def read_knowledge_file(path: str | Path) -> Any:
    """The parsed YAML of a knowledge file (raises :class:`LexiconError` when unreadable or not YAML)."""
    import yaml

    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LexiconError(f"cannot read knowledge file {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise LexiconError(f"knowledge file {path} is not valid YAML: {exc}") from None


def parse_lexicon(raw: Any) -> tuple[Words, ...]:
    """The words of every entry of a parsed knowledge file, in file order (raises :class:`LexiconError`)."""
    if not isinstance(raw, list):
        raise LexiconError(f"knowledge base: expected a list of categories, got {type(raw).__name__}")
    errors: list[str] = []
    entries = [parse_words(entry, f"categories[{i}]", errors) for i, entry in enumerate(raw)]
    if errors:
        shown = "\n  ".join(errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise LexiconError(f"invalid knowledge base words:\n  {shown}{more}")
    return tuple(e for e in entries if e is not None)


def load_lexicon(path: str | Path | None = None) -> tuple[Words, ...]:
    """The words of a knowledge file (default: the shipped one, read once and cached)."""
    if path is None:
        return _default_lexicon()
    return parse_lexicon(read_knowledge_file(path))


@functools.lru_cache(maxsize=1)
def _default_lexicon() -> tuple[Words, ...]:
    return parse_lexicon(read_knowledge_file(KNOWLEDGE_FILE))
