"""Items: the synthetic JSONL schema (:class:`SynthItem`), and :class:`Item`, the one view every stage consumes.

:class:`SynthItem` is the on-disk record of the synthetic world (validated on load).
:class:`Item` is what training, rewards, the teacher filter and evaluation read: the twin
the model sees, the query, the answer ids and the ground truth. :func:`as_item` converts at
the boundary — a :class:`SynthItem`, its JSONL dict, a row of :func:`load_dataset` (nested
fields as JSON text) or a row of the GRPO dataset (``twin_json``, ``gt_masks_json``) —
so no other code inspects containers. Benchmark samples (``data/benchmarks``) are scored
through the same :mod:`fastreasonseg.eval.scoring` path with their own lazily decoded masks.

One JSON object per line::

    {"id": "train-s0-000042", "split": "train", "scene_id": "train-s0-scene000042",
     "twin": <twin v1 dict: what the model sees (noisy when perception noise is on)>,
     "query": "the cup closest to the camera", "is_sentence": false,
     "category": "spatial", "level": 2, "program": <program JSON, see programs.py>,
     "answer_ids": [3],            # the program run on the noise-free twin
     "teacher": "<reason>...</reason>\\n<plan>...</plan>\\n<results>...</results>\\n<answer>[3]</answer>",
     "holdout": null | "phrasing" | "category",
     "meta": {...}}

``meta`` keys (all items): ``intent``, ``scene`` (scene type and camera, for
:func:`fastreasonseg.data.render.paint_frame`), ``noise_level`` (applied), ``gt_masks``,
``answer_labels``, ``teacher_answer_ids``, ``teacher_iou``, ``teacher_rounds``, ``seed``;
with noise also ``clean_twin``; when asked to render, ``render`` (relative picture path).

**Scoring against the ground truth.** ``answer_ids`` are ids of the *clean* twin. When
noise is on, the twin the model sees may have lost, duplicated or relabelled objects, so
an answer must be scored by masks, not ids: ``meta["gt_masks"]`` holds, for every frame
where the answer is visible, the union of the answer objects' clean masks as COCO RLE
(``[{"frame": index, "mask": rle}, ...]``; frames not listed have an empty ground truth).
Score a predicted id list with :func:`fastreasonseg.eval.scoring.target_from_item` (the one
scorer: the union of those ids' masks in ``twin`` per frame against these masks).
``meta["clean_twin"]`` keeps the noise-free twin so the program can be re-run.
``meta["teacher_iou"]`` is that score for the teacher's own answer (1.0 without noise):
the distillation stage keeps chains above a threshold, as the paper does (IoU > 0.7).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from fastreasonseg.data.programs import Program, ProgramError
from fastreasonseg.twin.core import DigitalTwin, TwinValidationError

SPLITS: tuple[str, ...] = ("train", "val", "test")
HOLDOUTS: tuple[str | None, ...] = (None, "phrasing", "category")
ITEM_KEYS: tuple[str, ...] = ("id", "split", "scene_id", "twin", "query", "is_sentence", "category", "level",
                              "program", "answer_ids", "teacher", "holdout", "meta")


class ItemError(ValueError):
    """An item line is malformed; the message names the file, line and field."""


@dataclass(frozen=True)
class SynthItem:
    """One synthetic item (see the module docstring for the fields)."""

    id: str
    split: str
    scene_id: str
    twin_dict: dict[str, Any]
    query: str
    is_sentence: bool
    category: str
    level: int
    program_dict: dict[str, Any]
    answer_ids: list[int]
    teacher: str
    holdout: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, where: str = "item") -> SynthItem:
        """Validate one parsed JSON object (raises :class:`ItemError` naming the bad field)."""
        if not isinstance(data, dict):
            raise ItemError(f"{where}: expected a JSON object, got {type(data).__name__}")
        missing = [k for k in ITEM_KEYS if k not in data]
        if missing:
            raise ItemError(f"{where}: missing fields {missing}")

        def need(key: str, kind: type | tuple[type, ...]) -> Any:
            value = data[key]
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
                raise ItemError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
            return value

        split = need("split", str)
        if split not in SPLITS:
            raise ItemError(f"{where}.split: expected one of {list(SPLITS)}, got {split!r}")
        category = need("category", str)
        if category not in ("semantic", "spatial", "temporal"):
            raise ItemError(f"{where}.category: expected semantic, spatial or temporal, got {category!r}")
        level = need("level", int)
        if level not in (1, 2, 3, 4):
            raise ItemError(f"{where}.level: expected 1..4, got {level!r}")
        answer = need("answer_ids", list)
        if not answer or not all(isinstance(i, int) and not isinstance(i, bool) for i in answer):
            raise ItemError(f"{where}.answer_ids: expected a non-empty list of integer ids")
        holdout = data["holdout"]
        if holdout not in HOLDOUTS:
            raise ItemError(f"{where}.holdout: expected null, 'phrasing' or 'category', got {holdout!r}")
        program = need("program", dict)
        try:
            Program.from_dict(program)
        except ProgramError as exc:
            raise ItemError(f"{where}.program: {exc}") from None
        return cls(id=need("id", str), split=split, scene_id=need("scene_id", str), twin_dict=need("twin", dict),
                   query=need("query", str), is_sentence=need("is_sentence", bool), category=category, level=level,
                   program_dict=program, answer_ids=list(answer), teacher=need("teacher", str), holdout=holdout,
                   meta=need("meta", dict))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "split": self.split, "scene_id": self.scene_id, "twin": self.twin_dict,
                "query": self.query, "is_sentence": self.is_sentence, "category": self.category, "level": self.level,
                "program": self.program_dict, "answer_ids": self.answer_ids, "teacher": self.teacher,
                "holdout": self.holdout, "meta": self.meta}

    # ------------------------------------------------------------------ derived views
    @cached_property
    def twin(self) -> DigitalTwin:
        """The twin the model sees (validated on first use)."""
        try:
            return DigitalTwin.from_dict(self.twin_dict)
        except TwinValidationError as exc:
            raise ItemError(f"item {self.id}: twin: {exc}") from None

    @cached_property
    def clean_twin(self) -> DigitalTwin:
        """The noise-free twin the ground truth was computed on (the same twin when there is no noise)."""
        raw = self.meta.get("clean_twin")
        if raw is None:
            return self.twin
        try:
            return DigitalTwin.from_dict(raw)
        except TwinValidationError as exc:
            raise ItemError(f"item {self.id}: meta.clean_twin: {exc}") from None

    @property
    def program(self) -> Program:
        return Program.from_dict(self.program_dict)

    @property
    def frame_indices(self) -> list[int]:
        return [f["index"] for f in self.twin_dict["frames"]]

    def gt_mask(self, frame_index: int) -> np.ndarray:
        """The ground-truth (H, W) bool mask of the answer in one frame (empty where it is not visible)."""
        from fastreasonseg.twin.masks import decode_mask

        for entry in self.meta.get("gt_masks", []):
            if entry["frame"] == frame_index:
                return decode_mask(entry["mask"])
        src = self.twin_dict["source"]
        return np.zeros((src["height"], src["width"]), dtype=bool)

    def predicted_mask(self, object_ids: list[int], frame_index: int) -> np.ndarray:
        """Union of ``object_ids``' masks in the twin the model sees (ids absent there add nothing)."""
        return self.twin.union_mask(object_ids, frame_index)


def iter_item_dicts(path: str | Path):
    """Yield ``(line_number, dict)`` for every line of a JSONL file (ItemError on bad JSON)."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise ItemError(f"cannot read {path}: {exc}") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise ItemError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            except RecursionError:
                raise ItemError(f"{path}:{number}: JSON nested too deeply") from None


def load_items(path: str | Path, split: str | None = None) -> list[SynthItem]:
    """Read and validate a synthetic JSONL file into :class:`SynthItem` objects (optionally one split only)."""
    if not Path(path).exists():
        raise ItemError(f"items file {path} does not exist; create it with `frs data synth`")
    items = [SynthItem.from_dict(data, where=f"{path}:{number}") for number, data in iter_item_dicts(path)]
    return [item for item in items if split is None or item.split == split]


DATASET_COLUMNS: tuple[str, ...] = ("id", "split", "scene_id", "query", "is_sentence", "category", "level",
                                    "answer_ids", "teacher", "holdout", "twin", "program", "meta")


def load_dataset(paths: str | Path | list[str | Path]):
    """The items as a Hugging Face ``datasets.Dataset``.

    ``twin``, ``program`` and ``meta`` are nested JSON of varying shape, which Arrow cannot
    hold in one schema, so they are stored as JSON strings (``json.loads`` them back, or use
    :func:`item_from_row`); every other field is a typed column. Items are validated first.
    """
    import datasets

    if isinstance(paths, (str, Path)):
        paths = [paths]
    rows: dict[str, list] = {c: [] for c in DATASET_COLUMNS}
    for path in paths:
        for item in load_items(path):
            record = item.to_dict()
            for column in DATASET_COLUMNS:
                value = record[column]
                rows[column].append(json.dumps(value, separators=(",", ":")) if column in ("twin", "program", "meta")
                                    else value)
    features = datasets.Features({
        "id": datasets.Value("string"), "split": datasets.Value("string"), "scene_id": datasets.Value("string"),
        "query": datasets.Value("string"), "is_sentence": datasets.Value("bool"),
        "category": datasets.Value("string"), "level": datasets.Value("int8"),
        "answer_ids": datasets.Sequence(datasets.Value("int32")), "teacher": datasets.Value("string"),
        "holdout": datasets.Value("string"), "twin": datasets.Value("string"), "program": datasets.Value("string"),
        "meta": datasets.Value("string"),
    })
    return datasets.Dataset.from_dict(rows, features=features)


def item_from_row(row: dict[str, Any]) -> SynthItem:
    """Rebuild a :class:`SynthItem` from a row of :func:`load_dataset`."""
    data = {k: (json.loads(row[k]) if k in ("twin", "program", "meta") else row[k]) for k in DATASET_COLUMNS}
    data["answer_ids"] = [int(i) for i in data["answer_ids"]]
    data["level"] = int(data["level"])
    return SynthItem.from_dict(data, where=f"row {row.get('id')}")


# --------------------------------------------------------------------------- the one view


_TWIN_CACHE: OrderedDict[str, DigitalTwin] = OrderedDict()
_TWIN_CACHE_SIZE = 256


@dataclass
class Item:
    """What every stage reads of an item. ``gt_masks``: frame index -> COCO RLE of the ground truth
    (None when the item has none: then the union of ``answer_ids`` in ``gt_twin``, or in ``twin``).
    ``keys`` are the groups the item is reported under (category, level, holdout)."""

    id: str
    query: str
    twin: DigitalTwin
    answer_ids: list[int]
    gt_twin: DigitalTwin | None = None
    gt_masks: dict[int, dict] | None = None
    teacher: str | None = None
    keys: dict[str, str] = field(default_factory=dict)
    split: str | None = None
    is_sentence: bool | None = None


def parse_twin(value: Any, where: str = "twin") -> DigitalTwin:
    """A validated twin from a DigitalTwin, a twin dict or its JSON text (parsed text is cached)."""
    if isinstance(value, DigitalTwin):
        return value
    if isinstance(value, dict):
        text = json.dumps(value, sort_keys=True)
    elif isinstance(value, str):
        text = value
    else:
        raise ItemError(f"{where} must be a twin dict or its JSON text, got {type(value).__name__}")
    cached = _TWIN_CACHE.get(text)
    if cached is not None:
        _TWIN_CACHE.move_to_end(text)
        return cached
    try:
        twin = DigitalTwin.from_json(text)
    except TwinValidationError as exc:
        raise ItemError(f"{where}: {exc}") from None
    _TWIN_CACHE[text] = twin
    if len(_TWIN_CACHE) > _TWIN_CACHE_SIZE:
        _TWIN_CACHE.popitem(last=False)
    return twin


def _json_field(value: Any, where: str) -> Any:
    """Dataset rows carry nested fields as JSON text; JSONL dicts carry them parsed."""
    if isinstance(value, str):
        try:
            return json.loads(value) if value else None
        except json.JSONDecodeError:
            raise ItemError(f"{where} is not valid JSON") from None
    return value


def _gt_masks(value: Any, item_id: str) -> dict[int, dict] | None:
    value = _json_field(value, f"item {item_id}: gt_masks")
    if value is None:
        return None
    if not isinstance(value, list):
        raise ItemError(f"item {item_id}: gt_masks must be a list of {{frame, mask}}")
    out = {}
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("frame"), int) or not isinstance(entry.get("mask"), dict):
            raise ItemError(f"item {item_id}: gt_masks entries must be {{\"frame\": int, \"mask\": RLE}}")
        out[entry["frame"]] = entry["mask"]
    return out


def _keys(category: Any, level: Any, holdout: Any, has_holdout: bool) -> dict[str, str]:
    keys = {}
    if category:
        keys["category"] = str(category)
    if level not in (None, ""):
        keys["level"] = f"L{level}" if isinstance(level, int) or str(level).isdigit() else str(level)
    if has_holdout:
        keys["holdout"] = str(holdout or "none")
    return keys


def _item_from_record(record: dict[str, Any], twin_value: Any = None) -> Item:
    """A JSONL dict, a :func:`load_dataset` row or a GRPO row (``twin_json``, ``gt_masks_json``, ``gt_twin_json``)."""
    item_id = str(record.get("id", ""))
    twin_value = twin_value or record.get("twin_json") or record.get("twin")
    if twin_value is None:
        raise ItemError(f"item {item_id or '?'} has no 'twin' (or 'twin_json') field")
    twin = parse_twin(twin_value, f"item {item_id}: twin")
    meta = _json_field(record.get("meta"), f"item {item_id or '?'}: meta") or {}
    if not isinstance(meta, dict):
        raise ItemError(f"item {item_id or '?'}: meta must be a JSON object")
    gt_masks = _gt_masks(record.get("gt_masks_json") or meta.get("gt_masks"), item_id)
    gt_value = record.get("gt_twin_json") or record.get("gt_twin") or meta.get("clean_twin")
    gt_twin = parse_twin(gt_value, f"item {item_id}: clean twin") if gt_value and gt_masks is None else None
    query = record.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ItemError(f"item {item_id or '?'} has no query text")
    answer = _json_field(record.get("answer_ids"), f"item {item_id}: answer_ids")
    if not isinstance(answer, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in answer):
        raise ItemError(f"item {item_id or '?'}: answer_ids must be a list of integer ids, got {answer!r}")
    is_sentence = record.get("is_sentence")
    return Item(id=item_id, query=query, twin=twin, answer_ids=[int(i) for i in answer], gt_twin=gt_twin,
                gt_masks=gt_masks, teacher=record.get("teacher"),
                keys=_keys(record.get("category"), record.get("level"), record.get("holdout"),
                           "holdout" in record and record.get("holdout") != ""),
                split=record.get("split"), is_sentence=is_sentence if isinstance(is_sentence, bool) else None)


def as_item(value: Item | SynthItem | dict[str, Any]) -> Item:
    """The one converter: a :class:`SynthItem`, a JSONL dict, a dataset row or a GRPO row -> :class:`Item`."""
    if isinstance(value, Item):
        return value
    if isinstance(value, SynthItem):
        return _item_from_record(value.to_dict(), twin_value=value.twin)
    if isinstance(value, dict):
        return _item_from_record(value)
    raise ItemError(f"cannot read an item from a {type(value).__name__}; expected a SynthItem or a JSON object")
