"""The knowledge base: what a person knows about each object category, loaded from ``categories.yaml``.

375 categories named after COCO, LVIS and a few COCO-Stuff / Objects365 labels (the YAML
header lists the sources), each with its uses ("cut bread"), facts ("gives milk"),
typical colours, materials, real size, scene types where it is found, how it rests in
a scene and property tags. The synthetic world draws scenes from it, the query
generator turns it into implicit queries ("something to cut bread with") and the
programmatic teacher quotes it in its reasoning.

Departure from the paper: the paper's teacher is an LLM that brings its own world
knowledge; offline we need that knowledge written down, so it is a hand-curated file
rather than anything learnt. The file is validated on load and every problem is
reported with the category it belongs to.

The file lives in the twin layer (``fastreasonseg/twin/knowledge/categories.yaml``) because
the DT tools' label matching takes its words from it too (:mod:`fastreasonseg.twin.lexicon`
reads the word fields: name, plural, synonyms, group, kind_of, kinds; this module adds the
rest), so the generator and the tools agree on what every word names.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastreasonseg.twin.lexicon import (
    KNOWLEDGE_FILE,
    WORD_FIELDS,
    LexiconError,
    parse_words,
    read_knowledge_file,
    regular_plural,
)

# sRGB values used to paint synthetic objects and to name colours in queries.
COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (200, 40, 40), "orange": (240, 140, 30), "yellow": (235, 210, 50), "green": (60, 150, 60),
    "blue": (45, 90, 200), "purple": (130, 60, 160), "pink": (235, 130, 170), "brown": (130, 85, 50),
    "black": (35, 35, 35), "white": (245, 245, 240), "gray": (128, 128, 128), "silver": (190, 195, 200),
    "gold": (215, 175, 55), "beige": (220, 200, 160),
}
# Colours a detector or a person easily mixes up: used by the perception-noise model.
SIMILAR_COLORS: dict[str, tuple[str, ...]] = {
    "red": ("orange", "pink"), "orange": ("red", "yellow"), "yellow": ("orange", "beige", "gold"),
    "green": ("blue",), "blue": ("purple", "green"), "purple": ("blue", "pink"), "pink": ("red", "purple"),
    "brown": ("black", "beige"), "black": ("gray", "brown"), "white": ("silver", "beige"),
    "gray": ("silver", "black"), "silver": ("gray", "white"), "gold": ("yellow",), "beige": ("white", "brown"),
}
SCENE_TYPES: tuple[str, ...] = (
    "kitchen", "dining_room", "living_room", "bedroom", "bathroom", "office", "classroom", "workshop",
    "street", "park", "beach", "farm", "sports_field",
)
SUPPORTS: tuple[str, ...] = ("floor", "table", "wall", "sky", "water", "ceiling")
# The supporting surfaces (categories tagged "surface": things with support "table" stand on
# them) each scene type may have, and the height of each one's top in metres (the size in
# the file is the silhouette, not the top). The tests check these name exactly the
# surface-tagged categories.
SCENE_SURFACES: dict[str, tuple[str, ...]] = {
    "kitchen": ("counter", "dining table"), "dining_room": ("dining table",), "living_room": ("coffee table",),
    "bedroom": ("nightstand", "desk", "dresser"), "bathroom": ("counter",), "office": ("desk",),
    "classroom": ("desk",), "workshop": ("workbench",), "street": ("bench",), "park": ("picnic table", "bench"),
    "beach": ("picnic table",), "farm": (), "sports_field": ("bench",),
}
SURFACE_TOP_M: dict[str, float] = {"bench": 0.45, "dining table": 0.76, "coffee table": 0.45, "desk": 0.75,
                                   "counter": 0.9, "workbench": 0.9, "nightstand": 0.6, "picnic table": 0.75,
                                   "dresser": 0.9}
TAGS: frozenset[str] = frozenset({
    "sharp", "edible", "hot", "cold", "soft", "electronic", "alive", "wheeled", "container", "wearable", "fragile",
    "heavy", "surface", "light_source", "readable", "large", "toy", "round", "fruit", "vegetable", "flying",
    "sweet", "dangerous", "pet", "slow",
})
MOVING_GROUPS: frozenset[str] = frozenset({"person", "animal", "vehicle"})
DEFAULT_SHAPE: dict[str, str] = {"person": "person", "animal": "quadruped", "vehicle": "car", "food": "ball"}
SOURCES: frozenset[str] = frozenset({"coco", "lvis", "coco-stuff", "objects365"})


class KnowledgeError(LexiconError):
    """The knowledge file is malformed; the message lists each problem with its category."""


@dataclass(frozen=True)
class Category:
    """One object category and what people know about it. ``size_m`` is (width, height) in metres."""

    name: str
    group: str
    uses: tuple[str, ...]
    facts: tuple[str, ...]
    colors: tuple[str, ...]
    materials: tuple[str, ...]
    size_m: tuple[float, float]
    places: tuple[str, ...]
    support: str
    shape: str
    tags: frozenset[str]
    moves: bool
    source: str
    synonyms: tuple[str, ...] = ()
    plural: str = ""
    # Broader words it is a kind of ("mug": cup) and narrower words for its kinds ("person": man).
    kind_of: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.plural:
            object.__setattr__(self, "plural", regular_plural(self.name))

    @property
    def is_alive(self) -> bool:
        return "alive" in self.tags

    @property
    def is_surface(self) -> bool:
        return "surface" in self.tags

    def has_tag(self, tag: str) -> bool:
        return tag in self.tags


@dataclass(frozen=True)
class KnowledgeBase:
    """All categories plus indexes by scene type, group, synonym and broader word."""

    categories: dict[str, Category]
    by_place: dict[str, tuple[str, ...]] = field(default_factory=dict)
    by_group: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Synonym -> the categories it may name; a synonym naming one category is unambiguous.
    by_synonym: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Broader word ("ball", "car") -> the categories that are a kind of it.
    by_kind: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.categories)

    def __contains__(self, name: object) -> bool:
        return name in self.categories

    def __getitem__(self, name: str) -> Category:
        try:
            return self.categories[name]
        except KeyError:
            raise KeyError(f"unknown category {name!r}; the knowledge base has {len(self.categories)} "
                           f"categories (e.g. {sorted(self.categories)[:5]})") from None

    def get(self, name: str) -> Category | None:
        return self.categories.get(name)

    def names(self) -> list[str]:
        return list(self.categories)

    def unique_synonyms(self, name: str) -> list[str]:
        """Synonyms of ``name`` that name no other category (safe to use in a query)."""
        return [s for s in self[name].synonyms if self.by_synonym.get(s) == (name,) and s not in self.categories]

    def with_tag(self, tag: str, among: Iterable[str] | None = None) -> list[str]:
        pool = self.categories if among is None else among
        return [n for n in pool if tag in self.categories[n].tags]

    def in_group(self, group: str, among: Iterable[str] | None = None) -> list[str]:
        pool = self.categories if among is None else among
        return [n for n in pool if self.categories[n].group == group]

    def similar(self, name: str) -> list[str]:
        """Categories a detector could confuse with ``name``: same group and drawing shape, a shared synonym,
        or a shared broader word (basketball and volleyball are both balls)."""
        cat = self[name]
        out = {n for s in cat.synonyms for n in self.by_synonym.get(s, ()) if n != name}
        out.update(n for k in cat.kind_of for n in self.by_kind.get(k, ()) if n != name)
        out.update(n for n in self.by_group.get(cat.group, ()) if n != name and self.categories[n].shape == cat.shape)
        return sorted(out)


def _as_strings(value: Any, where: str, errors: list[str], *, allowed: Iterable[str] | None = None) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        errors.append(f"{where}: expected a list of non-empty strings, got {value!r}"[:200])
        return ()
    if allowed is not None:
        allowed = set(allowed)
        bad = [v for v in value if v not in allowed]
        if bad:
            errors.append(f"{where}: unknown values {bad}; allowed: {sorted(allowed)}"[:300])
    return tuple(v.strip() for v in value)


def parse_categories(raw: Any) -> KnowledgeBase:
    """Validate the parsed YAML list and build the knowledge base (raises :class:`KnowledgeError`)."""
    errors: list[str] = []
    if not isinstance(raw, list):
        raise KnowledgeError(f"knowledge base: expected a list of categories, got {type(raw).__name__}")
    categories: dict[str, Category] = {}
    known = WORD_FIELDS | {"uses", "facts", "colors", "materials", "size", "places", "support", "shape", "tags",
                           "moves", "source"}
    for i, entry in enumerate(raw):
        words = parse_words(entry, f"categories[{i}]", errors)
        if words is None:
            continue
        name, group = words.name, words.group
        where = f"category {name!r}"
        unknown = set(entry) - known
        if unknown:
            errors.append(f"{where}: unknown fields {sorted(unknown)}")
        if name in categories:
            errors.append(f"{where}: defined twice")
        uses = _as_strings(entry.get("uses"), f"{where}.uses", errors)
        facts = _as_strings(entry.get("facts"), f"{where}.facts", errors)
        if not uses and not facts:
            errors.append(f"{where}: needs at least one of 'uses' or 'facts' (queries are built from them)")
        colors = _as_strings(entry.get("colors"), f"{where}.colors", errors, allowed=COLOR_RGB)
        if not colors:
            errors.append(f"{where}.colors: needs at least one colour")
        places = _as_strings(entry.get("places"), f"{where}.places", errors, allowed=SCENE_TYPES)
        if not places:
            errors.append(f"{where}.places: needs at least one scene type")
        tags = _as_strings(entry.get("tags"), f"{where}.tags", errors, allowed=TAGS)
        size = entry.get("size")
        if (not isinstance(size, list) or len(size) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 50 for v in size)):
            errors.append(f"{where}.size: expected [width, height] in metres (0 < v <= 50), got {size!r}")
            size = [0.1, 0.1]
        support = entry.get("support", "floor")
        if support not in SUPPORTS:
            errors.append(f"{where}.support: expected one of {list(SUPPORTS)}, got {support!r}")
        source = entry.get("source")
        if source not in SOURCES:
            errors.append(f"{where}.source: expected one of {sorted(SOURCES)}, got {source!r}")
        moves = entry.get("moves", group in MOVING_GROUPS)
        if not isinstance(moves, bool):
            errors.append(f"{where}.moves: expected true or false, got {moves!r}")
        shape = entry.get("shape", DEFAULT_SHAPE.get(group, "box"))
        categories[name] = Category(
            name=name, group=group, uses=uses, facts=facts, colors=colors,
            materials=_as_strings(entry.get("materials"), f"{where}.materials", errors),
            size_m=(float(size[0]), float(size[1])), places=places, support=support, shape=str(shape),
            tags=frozenset(tags), moves=bool(moves), source=str(source),
            synonyms=words.synonyms, plural=words.plural, kind_of=words.kind_of, kinds=words.kinds)
    if errors:
        shown = "\n  ".join(errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise KnowledgeError(f"invalid knowledge base:\n  {shown}{more}")
    by_place: dict[str, list[str]] = {p: [] for p in SCENE_TYPES}
    by_group: dict[str, list[str]] = {}
    by_synonym: dict[str, list[str]] = {}
    by_kind: dict[str, list[str]] = {}
    for cat in categories.values():
        for place in cat.places:
            by_place[place].append(cat.name)
        by_group.setdefault(cat.group, []).append(cat.name)
        for syn in cat.synonyms:
            by_synonym.setdefault(syn, []).append(cat.name)
        for word in cat.kind_of:
            by_kind.setdefault(word, []).append(cat.name)
    return KnowledgeBase(categories=categories, by_place={k: tuple(v) for k, v in by_place.items()},
                         by_group={k: tuple(v) for k, v in by_group.items()},
                         by_synonym={k: tuple(v) for k, v in by_synonym.items()},
                         by_kind={k: tuple(v) for k, v in by_kind.items()})


def load_knowledge(path: str | Path | None = None) -> KnowledgeBase:
    """Load and validate a knowledge file (default: the one shipped in the package, cached)."""
    if path is None:
        return _default_knowledge()
    return _load(Path(path))


@functools.lru_cache(maxsize=1)
def _default_knowledge() -> KnowledgeBase:
    return _load(KNOWLEDGE_FILE)


def _load(path: Path) -> KnowledgeBase:
    try:
        raw = read_knowledge_file(path)
    except LexiconError as exc:
        raise KnowledgeError(str(exc)) from None
    return parse_categories(raw)
