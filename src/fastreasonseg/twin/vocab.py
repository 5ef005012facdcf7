"""Label normalisation for the DT tools: case, plurals, synonyms and "is a kind of" links.

The reasoner asks for objects by the words in the query ("cups", "the man", "sofa") while
the detector labels them with its own vocabulary ("cup", "person", "couch"). The rule that
``filter_label``/``count`` use, in order:

1. Normalise both words: lower case, punctuation and underscores to spaces, leading
   articles/quantifiers dropped ("the", "a", "an", "some", "all"), then look the phrase up
   among the knowledge base's words: a category's name, plural or synonym gives the
   category's name ("sofas" -> couch, "telly" -> tv). Otherwise every word is singularised
   (irregular table first: people -> person, knives -> knife; then -ies -> -y,
   -ches/-shes/-sses/-xes/-zes -> drop "es", otherwise a final "s" is dropped unless the
   word ends in ss/us/is) and looked up again (a category named by its own plural, "skis",
   is also named by its singular, "ski"); a phrase still unknown keeps its singular words,
   with its last word mapped when that names a category ("small sofas" -> small couch).
2. A query matches a label when the normalised forms are equal, when the label's last word
   (its head noun) equals the query or is a kind of it ("table" matches "dining table", but
   "dining table" does not match "table": the query is then more specific than the twin can
   tell; "basketball" does not match "soccer ball" although both are balls), or when one is
   a kind of the other ("person" matches "man"/"woman"/"child"; "man" matches
   "person", because a detector label "person" may well be a man, but "man" never matches
   "woman"; "cup" matches "mug" and "ball" matches "basketball").

The word lists come from the knowledge base (:mod:`.lexicon`, ``knowledge/categories.yaml``):
names, plurals, synonyms, ``kind_of`` (broader words) and ``kinds`` (narrower words that are
not categories), read once and cached. So the tools and the synthetic-data generator agree
on what every word names; :func:`vocabulary_conflicts` lists any disagreement inside the file
(a word naming two categories, a synonym hiding another category's head noun, a kind-of
cycle...) and the tests require it to be empty.

Only a few hand-written extras remain, for words the knowledge base does not have:
:data:`EXTRA_PLURALS` (plurals of words that are no category's name: men, feet, dice...; the
file records its categories' plurals only) and :data:`EXTRA_SYNONYMS`, words a user may type
that the query generator must never put in a query, which is what the file's synonyms are
also used for ("mobile" is also a hanging toy, "individual" is not a noun people point with,
"hand bag" is a misspelling). The tests fail when an extra repeats or contradicts the file.

Hand-written rules instead of a lemmatiser (nltk/spacy): those need model downloads and are
big for a rule set this small; the categories we see are detector vocabularies (COCO/LVIS-like
nouns), where these rules are enough. The paper does not describe label matching.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from fastreasonseg.twin.lexicon import Words, load_lexicon

# Plural -> singular for words the suffix rules get wrong and whose plural the knowledge base
# does not record (it records its categories' plurals only; "man" and "woman" are kinds of person).
EXTRA_PLURALS: dict[str, str] = {
    "persons": "person", "men": "man", "women": "woman", "feet": "foot", "teeth": "tooth", "oxen": "ox",
    "wives": "wife", "lives": "life", "leaves": "leaf", "wolves": "wolf", "halves": "half", "loaves": "loaf",
    "thieves": "thief", "heroes": "hero", "dice": "die", "cacti": "cactus", "series": "series", "species": "species",
}

# Words a user may type for a category but the query generator must not use (see the module docstring).
EXTRA_SYNONYMS: dict[str, str] = {"mobile": "cell phone", "individual": "person", "hand bag": "handbag"}

_ARTICLES = frozenset({"the", "a", "an", "some", "all", "any", "every", "each", "this", "that", "these", "those"})
_NON_WORD = re.compile(r"[^a-z0-9]+")


def _words(text: str) -> list[str]:
    words = [w for w in _NON_WORD.sub(" ", str(text).lower()).split() if w]
    while len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    return words


def _rule_singular(word: str) -> str:
    """The suffix rules alone (module docstring, step 1)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@dataclass(frozen=True)
class LabelVocabulary:
    """The tables label matching uses, built from knowledge-base words by :func:`build_label_vocabulary`.

    ``plurals``: word -> singular word where the suffix rules fail; ``forms``: normalised
    phrase (a name, plural or synonym, as written and singularised) -> category name;
    ``broader``: normalised word -> the normalised words it is a kind of (one level);
    ``conflicts``: every disagreement found while building (empty for a consistent file).
    """

    plurals: dict[str, str]
    forms: dict[str, str]
    broader: dict[str, tuple[str, ...]]
    conflicts: tuple[str, ...]

    def singular(self, word: str) -> str:
        return self.plurals.get(word) or _rule_singular(word)

    def normalize(self, text: str) -> str:
        words = _words(text)
        if not words:
            return ""
        phrase = " ".join(words)
        if phrase in self.forms:
            return self.forms[phrase]
        singulars = [self.singular(w) for w in words]
        phrase = " ".join(singulars)
        if phrase in self.forms:
            return self.forms[phrase]
        if len(words) > 1:
            # map the head noun too: "small sofa" -> "small couch"
            head = self.forms.get(words[-1]) or self.forms.get(singulars[-1])
            if head is not None and " " not in head:
                return " ".join([*singulars[:-1], head])
        return phrase

    def ancestors(self, normalized: str) -> list[str]:
        """Every word ``normalized`` is a kind of, nearest first (chains followed, cycles cut)."""
        chain: list[str] = []
        seen = {normalized}
        frontier = [normalized]
        while frontier:
            nxt = []
            for word in frontier:
                for parent in self.broader.get(word, ()):
                    if parent not in seen:
                        seen.add(parent)
                        chain.append(parent)
                        nxt.append(parent)
            frontier = nxt
        return chain

    def matches(self, query: str, label: str) -> bool:
        return self.matches_normalized(self.normalize(query), self.normalize(label))

    def matches_normalized(self, q: str, lab: str) -> bool:
        """:meth:`matches` for words already normalised (rule 2 of the module docstring)."""
        if not q or not lab:
            return False
        if q == lab or q in self.ancestors(lab) or lab in self.ancestors(q):
            return True
        # The label's head noun ("dining table" -> "table") matches the query or a broader word for it,
        # but is no kind of the query's broader words: "basketball" (a ball) is no "soccer ball".
        head = lab.rsplit(" ", 1)[1] if " " in lab else None
        return head is not None and (head == q or q in self.ancestors(head))


def build_label_vocabulary(entries: Iterable[Words], extra_plurals: dict[str, str] | None = None,
                           extra_synonyms: dict[str, str] | None = None) -> LabelVocabulary:
    """The matching tables for ``entries`` plus the hand-written extras, and every conflict among them."""
    entries = list(entries)
    extra_plurals = EXTRA_PLURALS if extra_plurals is None else extra_plurals
    extra_synonyms = EXTRA_SYNONYMS if extra_synonyms is None else extra_synonyms
    conflicts: list[str] = []
    names = {e.name for e in entries}

    # 1. irregular plurals: the categories' own, then the extras (which must not repeat the file).
    plurals: dict[str, str] = {}
    plural_from: dict[str, str] = {}
    for e in entries:
        p_last, n_last = e.plural.rsplit(" ", 1)[-1], e.name.rsplit(" ", 1)[-1]
        if _rule_singular(p_last) == n_last:
            continue
        if p_last in plurals and plurals[p_last] != n_last:
            conflicts.append(f"plural {p_last!r} is the plural of {plurals[p_last]!r} ({plural_from[p_last]!r}) "
                             f"and of {n_last!r} ({e.name!r})")
            continue
        plurals[p_last], plural_from[p_last] = n_last, e.name
    for word, single in extra_plurals.items():
        if word in plurals:
            conflicts.append(f"extra plural {word!r} -> {single!r}: the knowledge base already has it "
                             f"({plural_from[word]!r}); drop it from EXTRA_PLURALS")
            continue
        plurals[word] = single
    vocab = LabelVocabulary(plurals=plurals, forms={}, broader={}, conflicts=())

    # 2. forms: every way of writing each category, as written and singularised.
    forms: dict[str, str] = {}
    how: dict[str, str] = {}

    def add(text: str, category: str, what: str) -> None:
        words = _words(text)
        written, singularised = " ".join(words), " ".join(vocab.singular(w) for w in words)
        for key, form in ((written, what), (singularised, f"{what}, singularised")):
            if not key or (form != what and key == written):
                continue
            if key in forms and forms[key] != category:
                conflicts.append(f"{key!r} names {forms[key]!r} ({how[key]}) and {category!r} ({form})")
                continue
            forms.setdefault(key, category)
            how.setdefault(key, form)

    for e in entries:
        add(e.name, e.name, "name")
    for e in entries:
        add(e.plural, e.name, "plural")
    for e in entries:
        for syn in e.synonyms:
            add(syn, e.name, "synonym")
    for word, category in extra_synonyms.items():
        key = " ".join(_words(word))
        if key in forms:
            conflicts.append(f"extra synonym {word!r} -> {category!r}: the knowledge base already has it "
                             f"({forms[key]!r}); drop it from EXTRA_SYNONYMS")
        elif category not in names:
            conflicts.append(f"extra synonym {word!r} -> {category!r}: no such category")
        else:
            add(word, category, "extra synonym")
    # A category named by its own plural ("skis", "grapes") is also named by the singular the
    # suffix rules give ("ski"), unless that word is taken or is another category's head noun ("glass").
    heads = {n.rsplit(" ", 1)[1] for n in names if " " in n}
    for e in entries:
        if e.plural == e.name and e.name.endswith("s"):
            *first, last = _words(e.name)
            guess = _rule_singular(last)
            key = " ".join([*first, guess if guess != last else last[:-1]])
            if key not in forms and key not in heads:
                forms[key], how[key] = e.name, "plural name, singularised"
    vocab = LabelVocabulary(plurals=plurals, forms=forms, broader={}, conflicts=())

    # 3. a word for one category must not hide another category's head noun
    #    ("table" meaning dining table would stop "table" from matching "coffee table").
    for name in sorted(names):
        if " " in name:
            head = name.rsplit(" ", 1)[1]
            owner = forms.get(head)
            if owner is not None and owner not in (head, name):
                conflicts.append(f"{head!r} names {owner!r} ({how[head]}) but is the head noun of {name!r}: "
                                 f"a query {head!r} would stop matching {name!r}")

    # 4. kind-of links: broader words (categories by their name, or words naming no category)
    #    and narrower words that name no category.
    broader: dict[str, list[str]] = {}
    for e in entries:
        for word in e.kind_of:
            target = vocab.normalize(word)
            if target == e.name:
                conflicts.append(f"{e.name!r} is listed as a kind of itself ({word!r})")
                continue
            if target in names and " ".join(_words(word)) != target:
                conflicts.append(f"{e.name!r}.kind_of {word!r} is a word for {target!r}: write the category name")
            broader.setdefault(e.name, []).append(target)
        for word in e.kinds:
            narrow = vocab.normalize(word)
            if narrow in names:
                conflicts.append(f"{e.name!r}.kinds {word!r} names the category {narrow!r}: "
                                 f"give {narrow!r} kind_of [{e.name}] instead")
                continue
            broader.setdefault(narrow, []).append(e.name)
    vocab = LabelVocabulary(plurals=plurals, forms=forms, broader={k: tuple(v) for k, v in broader.items()},
                            conflicts=())
    for word in sorted(broader):
        frontier, seen = list(broader[word]), set()
        while frontier:
            parent = frontier.pop()
            if parent == word:
                conflicts.append(f"kind-of cycle through {word!r}")
                break
            if parent not in seen:
                seen.add(parent)
                frontier.extend(broader.get(parent, ()))

    # 5. round trip: every name, plural and synonym normalises to its category.
    for e in entries:
        for what, text in [("name", e.name), ("plural", e.plural), *(("synonym", s) for s in e.synonyms)]:
            got = vocab.normalize(text)
            if got != e.name:
                conflicts.append(f"{e.name!r}: its {what} {text!r} normalises to {got!r}")
    return LabelVocabulary(plurals=plurals, forms=forms, broader=vocab.broader,
                           conflicts=tuple(dict.fromkeys(conflicts)))


@functools.lru_cache(maxsize=1)
def label_vocabulary() -> LabelVocabulary:
    """The tables for the shipped knowledge base (built once)."""
    return build_label_vocabulary(load_lexicon())


def vocabulary_conflicts(entries: Iterable[Words] | None = None) -> list[str]:
    """Every disagreement among the words of ``entries`` (default: the shipped knowledge base) and the extras."""
    vocab = label_vocabulary() if entries is None else build_label_vocabulary(entries)
    return list(vocab.conflicts)


def singular(word: str) -> str:
    """One lower-case word in its singular form (rules in the module docstring)."""
    return label_vocabulary().singular(word)


@functools.lru_cache(maxsize=16384)
def _normalize(text: str) -> str:
    return label_vocabulary().normalize(text)


def normalize_label(text: str) -> str:
    """Lower case, punctuation to spaces, articles dropped, then the category it names or each word singular."""
    return _normalize(str(text))


def label_matches(query: str, label: str) -> bool:
    """Whether the word(s) ``query`` name objects labelled ``label`` (rule in the module docstring)."""
    return label_vocabulary().matches_normalized(_normalize(str(query)), _normalize(str(label)))


def _plural_forms(word: str) -> list[str]:
    """Candidate plurals of ``word`` (kept by :func:`label_names` only when they normalise back to it)."""
    inverse = [plural for plural, single in EXTRA_PLURALS.items() if single == word]
    last = word.rsplit(" ", 1)[-1]
    stem = word[: len(word) - len(last)]
    endings = [last + "s", last + "es"] + ([last[:-1] + "ies"] if last.endswith("y") else [])
    return inverse + [stem + e for e in endings]


@functools.lru_cache(maxsize=4096)
def label_names(label: str) -> tuple[str, ...]:
    """Every phrase that names objects labelled ``label`` (lower case), sorted: the label, its head noun,
    the broader words it is a kind of, the knowledge base's names, plurals and synonyms that
    :func:`label_matches` it, and the plurals of all of these.

    The set an object name in a tool call is drawn from when decoding is constrained
    (:mod:`fastreasonseg.reasoning.grammar`); a phrase outside it names nothing in the twin.
    """
    vocab = label_vocabulary()
    target = _normalize(str(label))
    if not target:
        return ()
    clean = " ".join(_words(str(label)))
    bases = [clean] + ([clean.rsplit(" ", 1)[1]] if " " in clean else [])
    bases += vocab.ancestors(target)  # broader words name it too ("brush" a paintbrush)
    bases += [form for form in vocab.forms if vocab.matches_normalized(_normalize(form), target)]
    names = set()
    for base in bases:
        for form in [base, *_plural_forms(base)]:
            if vocab.matches_normalized(_normalize(form), target):
                names.add(form)
    return tuple(sorted(names))
