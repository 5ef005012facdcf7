"""The knowledge base: what a person knows about each object category, loaded from ``knowledge/categories.yaml``.

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
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KNOWLEDGE_FILE = Path(__file__).with_name("knowledge") / "categories.yaml"

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
TAGS: frozenset[str] = frozenset({
    "sharp", "edible", "hot", "cold", "soft", "electronic", "alive", "wheeled", "container", "wearable", "fragile",
    "heavy", "surface", "light_source", "readable", "large", "toy", "round", "fruit", "vegetable", "flying",
    "sweet", "dangerous", "pet", "slow",
})
MOVING_GROUPS: frozenset[str] = frozenset({"person", "animal", "vehicle"})
DEFAULT_SHAPE: dict[str, str] = {"person": "person", "animal": "quadruped", "vehicle": "car", "food": "ball"}
SOURCES: frozenset[str] = frozenset({"coco", "lvis", "coco-stuff", "objects365"})


class KnowledgeError(ValueError):
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


@dataclass(frozen=True)
class KnowledgeBase:
    """All categories plus indexes by scene type, group and synonym."""

    categories: dict[str, Category]
    by_place: dict[str, tuple[str, ...]] = field(default_factory=dict)
    by_group: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Synonym -> the categories it may name; a synonym naming one category is unambiguous.
    by_synonym: dict[str, tuple[str, ...]] = field(default_factory=dict)

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
        """Categories a detector could confuse with ``name``: same group and drawing shape, or a shared synonym."""
        cat = self[name]
        out = {n for s in cat.synonyms for n in self.by_synonym.get(s, ()) if n != name}
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
    known = {"name", "plural", "synonyms", "group", "uses", "facts", "colors", "materials", "size", "places",
             "support", "shape", "tags", "moves", "source"}
    for i, entry in enumerate(raw):
        where = f"categories[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            errors.append(f"{where}: expected a mapping with a string 'name'")
            continue
        name = entry["name"].strip()
        where = f"category {name!r}"
        unknown = set(entry) - known
        if unknown:
            errors.append(f"{where}: unknown fields {sorted(unknown)}")
        if name in categories:
            errors.append(f"{where}: defined twice")
        group = entry.get("group")
        if not isinstance(group, str) or not group:
            errors.append(f"{where}.group: expected a string")
            continue
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
        plural = entry.get("plural", "")
        if not isinstance(plural, str):
            errors.append(f"{where}.plural: expected a string")
            plural = ""
        categories[name] = Category(
            name=name, group=group, uses=uses, facts=facts, colors=colors,
            materials=_as_strings(entry.get("materials"), f"{where}.materials", errors),
            size_m=(float(size[0]), float(size[1])), places=places, support=support, shape=str(shape),
            tags=frozenset(tags), moves=bool(moves), source=str(source),
            synonyms=_as_strings(entry.get("synonyms"), f"{where}.synonyms", errors), plural=plural)
    if errors:
        shown = "\n  ".join(errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise KnowledgeError(f"invalid knowledge base:\n  {shown}{more}")
    by_place: dict[str, list[str]] = {p: [] for p in SCENE_TYPES}
    by_group: dict[str, list[str]] = {}
    by_synonym: dict[str, list[str]] = {}
    for cat in categories.values():
        for place in cat.places:
            by_place[place].append(cat.name)
        by_group.setdefault(cat.group, []).append(cat.name)
        for syn in cat.synonyms:
            by_synonym.setdefault(syn, []).append(cat.name)
    return KnowledgeBase(categories=categories, by_place={k: tuple(v) for k, v in by_place.items()},
                         by_group={k: tuple(v) for k, v in by_group.items()},
                         by_synonym={k: tuple(v) for k, v in by_synonym.items()})


def load_knowledge(path: str | Path | None = None) -> KnowledgeBase:
    """Load and validate a knowledge file (default: the one shipped in the package, cached)."""
    if path is None:
        return _default_knowledge()
    return _load(Path(path))


@functools.lru_cache(maxsize=1)
def _default_knowledge() -> KnowledgeBase:
    return _load(KNOWLEDGE_FILE)


def _load(path: Path) -> KnowledgeBase:
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KnowledgeError(f"cannot read knowledge file {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise KnowledgeError(f"knowledge file {path} is not valid YAML: {exc}") from None
    return parse_categories(raw)
