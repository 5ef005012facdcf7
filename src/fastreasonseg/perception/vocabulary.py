"""The labels OWLv2 looks for: a shipped default list, a user file, extra labels and query nouns.

The default list (``vocabulary.txt`` beside this module) is the 80 COCO categories plus
common household, kitchen, office and street objects. Users extend it with a file (one label
per line, ``#`` comments) or ``extra_labels``.

``nouns_from_query`` is a deliberately simple stand-in for a part-of-speech tagger (none is
installed, and a wrong extra label only costs OWLv2 a few more text queries): it keeps the
query's content words after dropping function words, pronouns, common verbs and vague nouns
("thing", "object"). The paper does not say how its vocabulary was chosen; this is ours.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

_STOPWORDS = frozenset("""
a an the this that these those there here it its it's they them their theirs he him his she her hers we us our
ours you your yours i me my mine what which who whom whose where when why how whatever whichever anything
something everything nothing one ones thing things object objects item items stuff part parts kind sort type
is are was were be been being am do does did done doing have has had having can could would should will shall
may might must need needs let lets get gets got make makes made use used uses using put puts take takes took
go goes went come comes see seen look looks looking find found show shows shown point points pointing
hold holds holding cut cuts cutting sit sits sitting stand stands standing lie lies lying move moves moving
want wants like likes give gives keep keeps help helps please segment select pick mark identify locate
of in on at to from by with without for about into onto over under above below near next beside between behind
front back left right top bottom middle center centre side inside outside up down off out around through across
and or but if then than so as not no nor also very more most less least much many few some any all each every
both either neither other another same such only just too own first last second third new old big small large
little tall short long wide high low closest nearest farthest furthest far close biggest smallest largest
left-most right-most leftmost rightmost usually typically often mostly can't don't could've would've
red green blue yellow orange-colored white black gray grey brown pink purple dark light bright colored coloured
away toward towards again still already later earlier before after while during until since runs run ran
walks walk walked appears appear appeared moves moved leaves leave left-hand right-hand visible hidden
""".split())

_WORD = re.compile(r"[a-z][a-z\-]*[a-z]|[a-z]")


def default_vocabulary() -> list[str]:
    """The shipped default labels, in file order."""
    text = resources.files("fastreasonseg.perception").joinpath("vocabulary.txt").read_text(encoding="utf-8")
    return parse_vocabulary(text)


def parse_vocabulary(text: str) -> list[str]:
    """Labels from vocabulary text: one per line, blank lines and '#' comments ignored, duplicates dropped."""
    labels = []
    for line in text.splitlines():
        label = line.split("#", 1)[0].strip().lower()
        if label:
            labels.append(re.sub(r"\s+", " ", label))
    return unique(labels)


def load_vocabulary_file(path: str | Path) -> list[str]:
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read vocabulary file {path}: {exc}") from None
    labels = parse_vocabulary(text)
    if not labels:
        raise ValueError(f"vocabulary file {path} holds no labels (one label per line)")
    return labels


def nouns_from_query(query: str, known_labels: Iterable[str] | None = None) -> list[str]:
    """Candidate object words from a free-form query ("the thing I'd cut the bread with" -> ["bread"]).

    A plural becomes its singular only when that singular is a known label ("knives" -> "knife"
    with the default vocabulary); otherwise the word is kept as written (OWLv2 reads plurals).
    """
    known = set(default_vocabulary() if known_labels is None else known_labels)
    words = _WORD.findall(query.lower().replace("\u2019", "'"))
    nouns = []
    for word in words:
        if word in _STOPWORDS or len(word) < 3:
            continue
        for singular in (word[:-3] + "fe", word[:-3] + "f", word[:-2], word[:-1]):
            if word.endswith("s") and singular in known:
                word = singular
                break
        nouns.append(word)
    return unique(nouns)


def build_vocabulary(*, use_default: bool = True, vocabulary_file: str | Path | None = None,
                     extra_labels: Iterable[str] = (), queries: Sequence[str] = (),
                     query_nouns: bool = True) -> list[str]:
    """The full label list for one run, duplicates removed, order kept (default, file, extra, query)."""
    labels: list[str] = []
    if use_default:
        labels += default_vocabulary()
    if vocabulary_file:
        labels += load_vocabulary_file(vocabulary_file)
    labels += [label.strip().lower() for label in extra_labels if label.strip()]
    if query_nouns:
        known = labels if use_default else default_vocabulary() + labels
        for query in queries:
            labels += nouns_from_query(query, known)
    return unique(labels)


def unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)
