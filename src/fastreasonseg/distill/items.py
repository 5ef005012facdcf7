"""One read-only view of a training/evaluation item, whatever container it arrives in.

Items come as :class:`fastreasonseg.data.items.SynthItem` objects, as their JSONL dicts
(schema in :mod:`fastreasonseg.data.items`), as rows of the data package's
``load_dataset`` (``twin``/``meta`` as JSON text), or as rows of the GRPO dataset built by
:func:`fastreasonseg.distill.grpo.build_rl_dataset` (``twin_json``, ``gt_masks_json``).
:func:`item_view` turns any of these into an :class:`ItemView` with a parsed, validated
twin (cached by content, so a reward scoring eight completions of one prompt parses its
twin once) and the ground truth.

Ground truth, in order of preference: ``meta["gt_masks"]`` (per-frame union of the answer's
clean masks, COCO RLE; frames not listed are empty), else the union of ``answer_ids`` in the
noise-free twin (``meta["clean_twin"]`` / ``gt_twin``), else in the twin the model sees.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastreasonseg.twin.core import DigitalTwin

_TWIN_CACHE: OrderedDict[str, DigitalTwin] = OrderedDict()
_TWIN_CACHE_SIZE = 256


class ItemError(ValueError):
    """An item lacks a field the distillation code needs; the message names it."""


@dataclass
class ItemView:
    """``gt_masks``: frame index -> COCO RLE of the ground truth (None when the item has none)."""

    id: str
    query: str
    twin: DigitalTwin
    answer_ids: list[int]
    gt_twin: DigitalTwin | None = None
    gt_masks: dict[int, dict] | None = None
    teacher: str | None = None
    keys: dict[str, str] = field(default_factory=dict)
    split: str | None = None


def _get(item: Any, name: str, default: Any = None) -> Any:
    if isinstance(item, dict):
        return item.get(name, default)
    return getattr(item, name, default)


def parse_twin(value: Any, where: str = "twin") -> DigitalTwin:
    """A validated twin from a DigitalTwin, a twin dict or its JSON text (parsed text is cached)."""
    from fastreasonseg.twin.core import DigitalTwin, TwinValidationError

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


def _meta(item: Any) -> dict[str, Any]:
    meta = _get(item, "meta")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta) if meta else {}
        except json.JSONDecodeError:
            raise ItemError(f"item {_get(item, 'id', '?')}: meta is not valid JSON") from None
    return meta if isinstance(meta, dict) else {}


def _gt_masks(value: Any, item_id: str) -> dict[int, dict] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, list):
        raise ItemError(f"item {item_id}: gt_masks must be a list of {{frame, mask}}")
    out = {}
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("frame"), int) or not isinstance(entry.get("mask"), dict):
            raise ItemError(f"item {item_id}: gt_masks entries must be {{\"frame\": int, \"mask\": RLE}}")
        out[entry["frame"]] = entry["mask"]
    return out


def item_view(item: Any) -> ItemView:
    """Read an item (SynthItem, JSONL dict or dataset row) into an :class:`ItemView`."""
    if isinstance(item, ItemView):
        return item
    item_id = str(_get(item, "id", ""))
    twin_value = _get(item, "twin_json") or _get(item, "twin")
    if twin_value is None:
        raise ItemError(f"item {item_id or '?'} has no 'twin' (or 'twin_json') field")
    twin = parse_twin(twin_value, f"item {item_id}: twin")
    meta = _meta(item)
    gt_masks = _gt_masks(_get(item, "gt_masks_json") or meta.get("gt_masks"), item_id)
    gt_value = _get(item, "gt_twin_json") or _get(item, "gt_twin") or meta.get("clean_twin")
    gt_twin = parse_twin(gt_value, f"item {item_id}: clean twin") if gt_value and gt_masks is None else None
    query = _get(item, "query")
    if not isinstance(query, str) or not query.strip():
        raise ItemError(f"item {item_id or '?'} has no query text")
    answer = _get(item, "answer_ids")
    if isinstance(answer, str):
        answer = json.loads(answer)
    if not isinstance(answer, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in answer):
        raise ItemError(f"item {item_id or '?'}: answer_ids must be a list of integer ids, got {answer!r}")
    keys = {}
    category = _get(item, "category")
    if category:
        keys["category"] = str(category)
    level = _get(item, "level")
    if level not in (None, ""):
        keys["level"] = f"L{level}" if isinstance(level, int) or str(level).isdigit() else str(level)
    if _get(item, "holdout", "") != "":
        keys["holdout"] = str(_get(item, "holdout") or "none")
    return ItemView(id=item_id, query=query, twin=twin, answer_ids=[int(i) for i in answer], gt_twin=gt_twin,
                    gt_masks=gt_masks, teacher=_get(item, "teacher"), keys=keys, split=_get(item, "split"))


def load_items(path: str | Path, split: str | None = None) -> Iterator[Any]:
    """Items of a synthetic-items JSONL (through the data package's loader when it has one), optionally one split."""
    try:
        from fastreasonseg.data.items import load_items as data_load_items
    except ImportError:
        data_load_items = None
    from fastreasonseg.distill.jsonl import read_jsonl

    path = Path(path)
    if not path.exists():
        raise ItemError(f"items file {path} does not exist; create it with `frs data synth`")
    try:
        source = data_load_items(path) if data_load_items is not None else list(read_jsonl(path))
    except ValueError as exc:  # the data package's ItemError is a ValueError with a message naming the line
        raise ItemError(str(exc)) from None
    for item in source:
        if split is None or _get(item, "split") in (None, split):
            yield item
