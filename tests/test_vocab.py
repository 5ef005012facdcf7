"""One vocabulary: the DT tools' label matching takes every word from the knowledge base, and the file agrees with itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from fastreasonseg.data.knowledge import load_knowledge
from fastreasonseg.twin.lexicon import KNOWLEDGE_FILE, Words, load_lexicon, regular_plural
from fastreasonseg.twin.vocab import (
    EXTRA_SYNONYMS,
    build_label_vocabulary,
    label_matches,
    normalize_label,
    singular,
    vocabulary_conflicts,
)

LEXICON = load_lexicon()
TWIN_DIR = Path(__file__).resolve().parents[1] / "src" / "fastreasonseg" / "twin"


def words(name: str, *, plural: str = "", synonyms: tuple[str, ...] = (), kind_of: tuple[str, ...] = (),
          kinds: tuple[str, ...] = ()) -> Words:
    return Words(name=name, group="thing", plural=plural or regular_plural(name), synonyms=synonyms,
                 kind_of=kind_of, kinds=kinds)


def conflicts(*entries: Words) -> list[str]:
    return list(build_label_vocabulary(entries, extra_plurals={}, extra_synonyms={}).conflicts)


# --------------------------------------------------------------------------- the shipped file


def test_the_knowledge_base_words_have_no_conflicts() -> None:
    assert vocabulary_conflicts() == []


def test_every_knowledge_base_synonym_is_known_to_label_matches() -> None:
    pairs = 0
    for entry in LEXICON:
        for syn in entry.synonyms:
            assert normalize_label(syn) == entry.name, (syn, entry.name)
            assert label_matches(syn, entry.name) and label_matches(entry.name, syn), (syn, entry.name)
            pairs += 1
        assert label_matches(entry.plural, entry.name) and label_matches(entry.name, entry.plural), entry.name
        assert normalize_label(entry.name) == entry.name
    assert pairs > 650  # 731 before the file's ambiguous words became kind-of links


def test_kind_of_links_come_from_the_file() -> None:
    for entry in LEXICON:
        for broader in entry.kind_of:
            assert label_matches(broader, entry.name), (broader, entry.name)
        for narrow in entry.kinds:
            assert label_matches(entry.name, narrow) and label_matches(narrow, entry.name), (narrow, entry.name)


def test_the_data_layer_reads_the_same_words() -> None:
    kb = load_knowledge()
    assert [e.name for e in LEXICON] == kb.names()
    for entry in LEXICON:
        cat = kb[entry.name]
        assert (cat.plural, cat.synonyms, cat.kind_of, cat.kinds) == (entry.plural, entry.synonyms, entry.kind_of,
                                                                       entry.kinds)
    # a unique synonym, as the query generator uses it, selects that category and no other
    for name in kb.names():
        for syn in kb.unique_synonyms(name):
            assert [n for n in kb.names() if label_matches(syn, n)] == [n for n in kb.names()
                                                                        if label_matches(name, n)]


@pytest.mark.parametrize(("query", "label", "matches"), [
    ("purse", "handbag", True), ("purse", "wallet", False),  # one meaning per word: a purse is a handbag
    ("suv", "jeep", True), ("suv", "car", True), ("car", "jeep", True),  # a jeep (an SUV) is a kind of car
    ("pickup", "pickup truck", True), ("truck", "pickup", True),
    ("telly", "tv", True), ("television", "tv", True), ("tv", "television", True),
    ("trolley", "shopping cart", True), ("trolley", "tram", False),
    ("mule", "donkey", True), ("mule", "slipper", False), ("pot", "saucepan", True), ("pot", "jar", False),
    ("cup", "mug", True), ("mug", "cup", True), ("cup", "trophy", False), ("keyboard", "piano", False),
    ("ball", "basketball", True), ("basketball", "soccer ball", False), ("ball", "tennis ball", True),
    ("big cat", "tiger", True), ("lion", "tiger", False), ("seat", "chair", True), ("seat", "bench", True),
    ("table", "coffee table", True), ("table", "dining table", True), ("can", "trash can", True),
    ("football", "soccer ball", True), ("football", "american football", True),
    ("taxi", "police car", False), ("taxi", "car", True), ("handbag", "backpack", False),
    ("girls", "child", True), ("girl", "boy", False), ("person", "girl", True), ("skier", "person", True),
    ("ski", "skis", True), ("grape", "grapes", True), ("glasses", "wine glass", False),
    ("wine glasses", "wine glass", True), ("scooter", "motor scooter", True), ("scooter", "motorcycle", False),
    ("mobile", "cell phone", True), ("hand bag", "handbag", True), ("oxen", "bull", True),
])
def test_label_matches_follows_the_knowledge_base(query: str, label: str, matches: bool) -> None:
    assert label_matches(query, label) is matches


def test_singular_uses_the_file_plurals_and_the_extras() -> None:
    assert singular("calves") == "calf" and singular("geese") == "goose" and singular("cookies") == "cookie"
    assert singular("men") == "man" and singular("dice") == "die"  # extras: words that are no category
    assert singular("glasses") == "glasses"  # the category "glasses" (spectacles) is its own plural


def test_extras_are_only_for_words_the_file_lacks() -> None:
    names = {e.name for e in LEXICON}
    written = {w for e in LEXICON for w in (e.name, e.plural, *e.synonyms, *e.kinds)}
    for word, category in EXTRA_SYNONYMS.items():
        assert word not in written and category in names


def test_the_twin_layer_never_imports_the_data_layer() -> None:
    for path in sorted(TWIN_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):  # function-level imports count too
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("fastreasonseg.data"), f"{path.name} imports {node.module}"
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("fastreasonseg.data") for a in node.names), path.name


def test_the_knowledge_file_ships_in_the_twin_package() -> None:
    assert KNOWLEDGE_FILE.is_file() and KNOWLEDGE_FILE.parent.parent == TWIN_DIR
    assert KNOWLEDGE_FILE.suffix == ".yaml"  # pyproject's package-data glob includes **/*.yaml


# --------------------------------------------------------------------------- the conflict check itself


def test_a_synonym_naming_two_categories_is_a_conflict() -> None:
    found = conflicts(words("handbag", synonyms=("purse",)), words("wallet", synonyms=("purse",)))
    assert any("'purse' names 'handbag' (synonym) and 'wallet' (synonym)" in c for c in found), found


def test_a_synonym_equal_to_another_category_name_is_a_conflict() -> None:
    found = conflicts(words("cup"), words("trophy", synonyms=("cup",)))
    assert any("'cup' names 'cup' (name) and 'trophy' (synonym)" in c for c in found), found


def test_a_plural_colliding_with_another_category_is_a_conflict() -> None:
    found = conflicts(words("glass"), words("glasses", plural="glasses"))
    assert any("'glasses' names 'glasses' (name) and 'glass' (plural)" in c for c in found), found
    found = conflicts(words("person", plural="people"), words("folk", plural="people"))
    assert any("'people'" in c and "'person'" in c and "'folk'" in c for c in found), found


def test_a_synonym_hiding_a_head_noun_is_a_conflict() -> None:
    found = conflicts(words("dining table", synonyms=("table",)), words("coffee table"))
    assert any("head noun of 'coffee table'" in c for c in found), found


def test_bad_kind_of_links_are_conflicts() -> None:
    assert any("cycle" in c for c in conflicts(words("a", kind_of=("b",)), words("b", kind_of=("a",))))
    assert any("kind of itself" in c for c in conflicts(words("a", kind_of=("a",))))
    found = conflicts(words("person", kinds=("child",)), words("child"))
    assert any("names the category 'child'" in c for c in found), found
    found = conflicts(words("car", synonyms=("auto",)), words("taxi", kind_of=("auto",)))
    assert any("write the category name" in c for c in found), found


def test_extras_repeating_the_file_are_conflicts() -> None:
    entries = [words("couch", plural="couches", synonyms=("sofa",)), words("knife", plural="knives")]
    found = build_label_vocabulary(entries, extra_plurals={"knives": "knife"}, extra_synonyms={"sofa": "couch"})
    assert any("EXTRA_PLURALS" in c for c in found.conflicts) and any("EXTRA_SYNONYMS" in c for c in found.conflicts)


def test_a_consistent_file_has_no_conflicts() -> None:
    assert conflicts(words("couch", plural="couches", synonyms=("sofa",)), words("mug", kind_of=("cup",)),
                     words("cup"), words("person", plural="people", kinds=("man", "woman"))) == []



def test_label_names_all_name_the_label_and_cover_its_plurals_synonyms_and_broader_words() -> None:
    from fastreasonseg.twin.vocab import label_names

    for label in ("person", "tennis racket", "cup", "dining table", "knife", "potted plant", "unknown gadget"):
        names = label_names(label)
        assert names and all(label_matches(n, label) for n in names), label
    assert {"cups", "mug", "mugs"} <= set(label_names("cup"))
    assert {"racket", "rackets", "tennis rackets"} <= set(label_names("tennis racket"))
    assert {"table", "tables"} <= set(label_names("dining table"))
    assert "people" in label_names("person") and "knives" in label_names("knife")
    assert "woman" not in label_names("man") and "table" not in label_names("chair")
