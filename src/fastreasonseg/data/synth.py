"""``frs data synth``: generate synthetic items (scene + query + program + answer + teacher chain) to JSONL.

Run::

    frs data synth --out data/synth --split train --n 10000 --seed 0 [--video] [--noise medium] [--render]

writes ``DIR/train.jsonl`` (schema in :mod:`.items`), ``DIR/train.config.json`` (the
resolved :class:`SynthConfig`), ``DIR/train.stats.json`` (category x level counts, teacher
chain lengths, timing) and, with ``--render``, pictures under ``DIR/render/train/``.
``--category-weights temporal=2`` draws a category's cells more often (say, twice the
temporal share of a video split: temporal is 1 of 3 categories by default, 2 of 4 then).

**Determinism and resumption.** Item ``i`` of split ``s`` is generated from random
generators seeded with ``(seed, s, i, purpose)`` only, so it is the same whatever ran
before it: a crashed or interrupted run resumes by reading the ids already in the file
(a torn last line is dropped) and generating only the missing ones, and ``--n`` can be
raised later to extend a dataset. A run with a different configuration in the same
directory is refused instead of mixing datasets.

**Splits** (how generalisation is measured):

- train / val / test use disjoint random streams, so their scenes are different
  layouts (the tests check no scene fingerprint repeats across splits);
- *held-out categories*: a fixed ~7% of the knowledge base (:func:`holdout_categories`,
  chosen by a hash of the name among the non-COCO categories, so the 80 COCO classes are
  always trained; never people or supporting furniture) never appears in train or val scenes;
- the test split holds three subsets, by item index: ``holdout=null`` (in-distribution:
  no held-out category, training phrasings), ``"phrasing"`` (every fifth item: held-out
  wordings from :mod:`.phrasing`, known categories) and ``"category"`` (every fifth item:
  the answer contains a held-out category, training phrasings).

Every answer is verified when it is made: it is the output of the query's program on the
noise-free twin, the program's margins are clear (:mod:`.programs`), and the teacher's
chain is re-parsed with the runtime's parser against the twin it was written on.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from fastreasonseg.data.items import SPLITS
from fastreasonseg.data.knowledge import KnowledgeBase, load_knowledge
from fastreasonseg.data.noise import add_noise
from fastreasonseg.data.queries import BUILDERS, CATEGORIES, LEVELS, Query, generate_query
from fastreasonseg.data.scenes import Scene, SceneConfig, generate_scene
from fastreasonseg.data.teacher import teach
from fastreasonseg.io import atomic_write_json
from fastreasonseg.twin.core import DigitalTwin

GENERATOR_VERSION = 5  # 2: knowledge-tool chains, request surface variety; 3: calls name objects;
# 4: every chain takes its answer from tool results (a filter_label round where no other tool runs);
# 5: temporal answers lead the last result (extreme by speed, motion direction, track_info only,
# event_order order), no knowledge round for a word the tools' label matching resolves
HOLDOUT_MODULUS = 12  # about 1 in 12 categories is held out
HOLDOUT_EXEMPT_GROUPS = frozenset({"person"})

# Purposes: independent random streams per item, so changing one part never shifts the others.
_CELL, _SCENE, _QUERY, _NOISE, _TEACHER, _VARIETY = 1, 2, 3, 4, 5, 6


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a synthetic split. Saved beside the JSONL as ``<split>.config.json``."""

    split: str = "train"
    n: int = 100
    seed: int = 0
    video: bool = False
    noise: float = 0.0
    render: bool = False
    width: int = 480
    height: int = 360
    num_frames: int = 8
    fps: float = 2.0
    categories: tuple[str, ...] = CATEGORIES
    # How often each category's cells are drawn relative to the others (None: every (category,
    # level) cell equally often, as before); e.g. {"temporal": 2} doubles the temporal share of a
    # video split. Categories left out weigh 1; equal weights (over the categories the split can
    # draw: temporal needs videos) are stored as None, so they draw exactly the default items.
    category_weights: dict[str, float] | None = None
    levels: tuple[int, ...] = LEVELS
    sentence_share: float = 0.4
    request_variety: float = 0.3  # share of requests typed casually (data/requests.py)
    workers: int = 1
    version: int = GENERATOR_VERSION
    # Fields that may differ between a run and its resumption (they do not change any item).
    resumable_fields: tuple[str, ...] = field(default=("n", "render", "workers"), repr=False)

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {self.split!r}")
        if not 1 <= self.n <= 10_000_000:
            raise ValueError(f"n must be between 1 and 10,000,000 items, got {self.n}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"seed must be in [0, 2**32), got {self.seed}")
        if not 0.0 <= self.noise <= 1.0:
            raise ValueError(f"noise must be in [0, 1] (0 = perfect twins), got {self.noise}")
        if not 0.0 <= self.request_variety <= 1.0:
            raise ValueError(f"request_variety must be in [0, 1], got {self.request_variety}")
        if not 0.0 <= self.sentence_share <= 1.0:
            raise ValueError(f"sentence_share must be in [0, 1], got {self.sentence_share}")
        if not 1 <= self.workers <= 64:
            raise ValueError(f"workers must be 1..64, got {self.workers}")
        bad = set(self.categories) - set(CATEGORIES)
        if bad or not self.categories:
            raise ValueError(f"categories must be a non-empty subset of {list(CATEGORIES)}, got {list(self.categories)}")
        if set(self.levels) - set(LEVELS) or not self.levels:
            raise ValueError(f"levels must be a non-empty subset of {list(LEVELS)}, got {list(self.levels)}")
        if not self.video and set(self.categories) == {"temporal"}:
            raise ValueError("temporal queries need videos: add --video or choose other categories")
        object.__setattr__(self, "categories", tuple(self.categories))
        object.__setattr__(self, "category_weights", self._resolved_weights())
        object.__setattr__(self, "levels", tuple(int(v) for v in self.levels))
        SceneConfig(width=self.width, height=self.height, num_frames=self.num_frames, fps=self.fps)  # validates

    def _resolved_weights(self) -> dict[str, float] | None:
        """One weight per drawn category (None when all are equal); raises ValueError saying what to fix."""
        if self.category_weights is None:
            return None
        if not isinstance(self.category_weights, dict):
            raise ValueError("category_weights must map categories to weights, e.g. {temporal: 2}")
        unknown = set(self.category_weights) - set(self.categories)
        if unknown:
            raise ValueError(f"category_weights names {sorted(unknown)}, which this split does not generate "
                             f"(categories: {list(self.categories)})")
        weights = {}
        for category in self.categories:
            value = self.category_weights.get(category, 1.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1000:
                raise ValueError(f"category weight for {category} must be a number in [0, 1000], got {value!r}")
            weights[category] = float(value)
        drawn = [c for c in self.categories if c != "temporal" or self.video]
        if not any(weights[c] > 0 for c in drawn):
            raise ValueError(f"category_weights give every drawable category ({drawn}) weight 0")
        return None if len({weights[c] for c in drawn}) == 1 else weights  # uniform: the default draw

    def draw_cell(self, cells: list[tuple[str, int]], rng: np.random.Generator) -> tuple[str, int]:
        """A (category, level) cell: uniform over ``cells``, or by ``category_weights`` spread over each one's levels."""
        if self.category_weights is None:
            return cells[int(rng.integers(len(cells)))]
        per_category = Counter(c for c, _ in cells)
        p = np.array([self.category_weights[c] / per_category[c] for c, _ in cells])
        return cells[int(rng.choice(len(cells), p=p / p.sum()))]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("resumable_fields")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SynthConfig:
        known = {f.name for f in fields(cls)} - {"resumable_fields"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown synth config fields {sorted(unknown)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()})

    def differs_from(self, other: SynthConfig) -> list[str]:
        """Fields that change the items (so a run cannot resume another's output)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [k for k in mine if k not in self.resumable_fields and mine[k] != theirs.get(k)]


def parse_category_weights(text: str) -> dict[str, float]:
    """``"semantic=1,temporal=2"`` -> ``{"semantic": 1.0, "temporal": 2.0}``; ValueError saying the expected form."""
    weights: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ValueError(f"category weights look like temporal=2 or semantic=1,temporal=2; got {part!r}")
    if not weights:
        raise ValueError("category weights look like temporal=2 or semantic=1,temporal=2; got nothing")
    return weights


def holdout_categories(kb: KnowledgeBase | None = None) -> frozenset[str]:
    """The fixed held-out object categories: stable hash of the name, never people or supporting surfaces."""
    kb = kb or load_knowledge()
    return frozenset(name for name, cat in kb.categories.items()
                     if zlib.crc32(name.encode()) % HOLDOUT_MODULUS == 0 and cat.source != "coco"
                     and cat.group not in HOLDOUT_EXEMPT_GROUPS and not cat.is_surface)


def holdout_kind(split: str, index: int) -> str | None:
    """Which test subset item ``index`` belongs to (None for train/val and in-distribution test items)."""
    if split != "test":
        return None
    return {3: "phrasing", 4: "category"}.get(index % 5)


def _rng(config: SynthConfig, index: int, purpose: int, attempt: int = 0) -> np.random.Generator:
    split_code = SPLITS.index(config.split)
    return np.random.default_rng(np.random.SeedSequence([config.seed, split_code, index, purpose, attempt]))


def item_id(config: SynthConfig, index: int) -> str:
    """``train-s0-000042`` for image items, ``train-s0-v000042`` for video items: the two never collide,
    so image and video files of one seed can be mixed into one training or test file."""
    return f"{config.split}-s{config.seed}-{'v' if config.video else ''}{index:06d}"


def scene_fingerprint(twin: DigitalTwin) -> str:
    """A content hash of a scene's first frame (labels and rounded boxes): equal scenes, equal hashes."""
    import hashlib

    frame = twin.frames[0]
    key = sorted((o.label, tuple(round(v) for v in o.box)) for o in frame.objects)
    return hashlib.sha1(json.dumps([twin.source.width, twin.source.height, key]).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- one item


@dataclass
class _Made:
    scene: Scene
    query: Query
    attempts: int


def _make_query(config: SynthConfig, index: int, kb: KnowledgeBase, holdout: str | None,
                held_out: frozenset[str]) -> _Made:
    scene_config = SceneConfig(
        width=config.width, height=config.height, video=config.video, num_frames=config.num_frames, fps=config.fps,
        exclude_categories=frozenset() if holdout == "category" else held_out,
        require_one_of=held_out if holdout == "category" else frozenset())
    cells = [(c, lev) for c in config.categories for lev in config.levels
             if (c, lev) in BUILDERS and (c != "temporal" or config.video)]
    cell = config.draw_cell(cells, _rng(config, index, _CELL))
    required = held_out if holdout == "category" else frozenset()
    # First try hard for the drawn (category, level) cell, so the dataset stays balanced; then any cell.
    for attempt in range(40):
        wanted = ((cell[0],), (cell[1],)) if attempt < 24 else (config.categories, config.levels)
        scene_id = f"{config.split}-s{config.seed}-{'vscene' if config.video else 'scene'}{index:06d}"
        scene = generate_scene(_rng(config, index, _SCENE, attempt), scene_config, kb, scene_id=scene_id)
        query = generate_query(scene, _rng(config, index, _QUERY, attempt), kb, holdout_phrasing=holdout == "phrasing",
                               required_categories=required, categories=wanted[0], levels=wanted[1],
                               sentence_share=config.sentence_share, max_attempts=6)
        if query is not None:
            return _Made(scene=scene, query=query, attempts=attempt + 1)
    raise RuntimeError(f"item {item_id(config, index)}: no query could be generated in 40 scenes "
                       f"(cell {cell}, holdout {holdout}); this is a generator bug")


def _gt_masks(twin: DigitalTwin, ids: list[int]) -> list[dict[str, Any]]:
    """Per frame, the union of the answer objects' masks as COCO RLE (merged without decoding)."""
    from pycocotools import mask as mask_utils

    out = []
    wanted = set(ids)
    for frame in twin.frames:
        rles = [o.mask for o in frame.objects if o.id in wanted and o.mask is not None]
        if not rles:
            continue
        if len(rles) == 1:
            rle = rles[0]
        else:
            merged = mask_utils.merge([{"size": r["size"], "counts": r["counts"].encode("ascii")} for r in rles])
            rle = {"size": [int(v) for v in merged["size"]], "counts": merged["counts"].decode("ascii")}
        out.append({"frame": frame.index, "mask": {"size": list(rle["size"]), "counts": rle["counts"]}})
    return out


def _answer_iou(seen: DigitalTwin, answer: list[int], gt: list[dict[str, Any]]) -> float:
    """Mean J over frames of the teacher's answer on the seen twin against the clean ground truth."""
    from fastreasonseg.metrics import j_score
    from fastreasonseg.twin.masks import decode_mask

    by_frame = {g["frame"]: g["mask"] for g in gt}
    scores = []
    for frame in seen.frames:
        pred = seen.union_mask(answer, frame.index)
        truth = (decode_mask(by_frame[frame.index]) if frame.index in by_frame
                 else np.zeros_like(pred))
        scores.append(j_score(pred, truth))
    return round(float(np.mean(scores)), 4) if scores else 0.0


def generate_item(config: SynthConfig, index: int, kb: KnowledgeBase | None = None,
                  held_out: frozenset[str] | None = None) -> dict[str, Any]:
    """Item ``index`` of the split described by ``config`` as a JSON-ready dict (deterministic).

    The knowledge tool runs with the held-out categories' entries removed from its index
    (every split), so a held-out category is only ever described by its label.
    """
    from fastreasonseg.twin.tools.knowledge import excluded_categories

    kb = kb or load_knowledge()
    held_out = holdout_categories(kb) if held_out is None else held_out
    with excluded_categories(held_out):
        return _generate_item(config, index, kb, held_out)


def _generate_item(config: SynthConfig, index: int, kb: KnowledgeBase, held_out: frozenset[str]) -> dict[str, Any]:
    import dataclasses

    from fastreasonseg.data.requests import vary_request
    from fastreasonseg.data.teacher import knowledge_phrase
    from fastreasonseg.reasoning.protocol import parse_rollout

    holdout = holdout_kind(config.split, index)
    made = _make_query(config, index, kb, holdout, held_out)
    scene, query = made.scene, made.query
    varied = vary_request(query.text, _rng(config, index, _VARIETY), share=config.request_variety,
                          protect=knowledge_phrase(query) or "")
    query = dataclasses.replace(query, text=varied)
    clean = scene.twin
    seen, applied, rollout = clean, 0.0, None
    if config.noise > 0:
        for attempt in range(3):
            noisy = add_noise(clean, config.noise, _rng(config, index, _NOISE, attempt), kb=kb,
                              scene_categories=list(kb.by_place[scene.scene_type]))
            rollout = teach(query, noisy, kb, _rng(config, index, _TEACHER, attempt))
            if rollout is not None:
                seen, applied = noisy, config.noise
                break
    if rollout is None:
        # Clean twin (no noise asked, or three noisy twins on which the program could not run:
        # recorded in meta.noise_level so nothing is hidden).
        rollout = teach(query, clean, kb, _rng(config, index, _TEACHER))
    if rollout is None:
        raise RuntimeError(f"item {item_id(config, index)}: the teacher failed on the clean twin; generator bug")
    parsed = parse_rollout(rollout.text, seen)
    if not parsed.ok or parsed.answer_ids != rollout.answer_ids:
        raise RuntimeError(f"item {item_id(config, index)}: teacher rollout does not parse cleanly: {parsed.codes}")
    gt = _gt_masks(clean, query.answer_ids)
    teacher_iou = 1.0 if seen is clean and rollout.answer_ids == query.answer_ids else _answer_iou(
        seen, rollout.answer_ids, gt)
    meta: dict[str, Any] = {
        "intent": query.intent, "scene": {"type": scene.scene_type, "camera": scene.camera},
        "noise_level": applied, "gt_masks": gt,
        "answer_labels": sorted({scene.objects[i].category for i in query.answer_ids}),
        "teacher_answer_ids": rollout.answer_ids, "teacher_iou": teacher_iou, "teacher_rounds": rollout.rounds,
        "seed": {"seed": config.seed, "split": config.split, "index": index, "scene_attempts": made.attempts},
        "scene_fingerprint": scene_fingerprint(clean), "generator_version": GENERATOR_VERSION,
    }
    if seen is not clean:
        meta["clean_twin"] = clean.to_dict()
    return {"id": item_id(config, index), "split": config.split, "scene_id": scene.scene_id, "twin": seen.to_dict(),
            "query": query.text, "is_sentence": query.is_sentence, "category": query.category, "level": query.level,
            "program": query.program.to_dict(), "answer_ids": query.answer_ids, "teacher": rollout.text,
            "holdout": holdout, "meta": meta}


# --------------------------------------------------------------------------- a whole split


def _render(item: dict[str, Any], out_dir: Path) -> str:
    from fastreasonseg.data.render import render_item

    twin = DigitalTwin.from_dict(item["meta"].get("clean_twin", item["twin"]))
    path = render_item(twin, out_dir / item["id"], highlight_ids=item["answer_ids"], scene=item["meta"]["scene"])
    return str(path)


def _worker_init(config_dict: dict[str, Any]) -> None:
    global _WORKER_STATE
    config = SynthConfig.from_dict(config_dict)
    kb = load_knowledge()
    _WORKER_STATE = (config, kb, holdout_categories(kb))


_WORKER_STATE: tuple[SynthConfig, KnowledgeBase, frozenset[str]] | None = None


def _worker_item(index: int) -> dict[str, Any]:
    assert _WORKER_STATE is not None
    config, kb, held_out = _WORKER_STATE
    return generate_item(config, index, kb, held_out)


def _existing_ids(path: Path) -> set[str]:
    """Ids already written; a torn last line (interrupted write) is cut off so appending stays valid."""
    if not path.exists():
        return set()
    ids: set[str] = set()
    good_bytes = 0
    with path.open("rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                break
            try:
                ids.add(json.loads(raw)["id"])
            except (json.JSONDecodeError, KeyError, TypeError):
                break
            good_bytes += len(raw)
    if good_bytes != path.stat().st_size:
        with path.open("r+b") as handle:
            handle.truncate(good_bytes)
    return ids


class ConfigMismatch(ValueError):
    """The output directory holds a split generated with different settings."""


def check_resumable(config: SynthConfig, out_dir: str | Path) -> None:
    """Raise :class:`ConfigMismatch` when ``out_dir`` holds this split made with item-changing settings."""
    out_dir = Path(out_dir)
    jsonl = out_dir / f"{config.split}.jsonl"
    config_path = out_dir / f"{config.split}.config.json"
    if not (config_path.exists() and jsonl.exists()):
        return
    try:
        previous = SynthConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise ConfigMismatch(f"{config_path} is not a valid synth config ({exc}); use another --out") from None
    changed = config.differs_from(previous)
    if changed:
        was = ", ".join(f"{k}={getattr(previous, k)!r}" for k in changed)
        raise ConfigMismatch(f"{jsonl} was generated with different settings ({was}); "
                             f"use a new --out directory or the same options to resume")


def synthesize(config: SynthConfig, out_dir: str | Path,
               progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Generate (or complete) ``config.n`` items of ``config.split`` in ``out_dir``; returns the stats dict.

    ``progress(done, total)`` is called after every item (the CLI draws a bar with it).
    """
    out_dir = Path(out_dir)
    check_resumable(config, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl = out_dir / f"{config.split}.jsonl"
    config_path = out_dir / f"{config.split}.config.json"
    atomic_write_json(config_path, config.to_dict(), indent=2, sort_keys=True)
    done = _existing_ids(jsonl)
    todo = [i for i in range(config.n) if item_id(config, i) not in done]
    render_dir = out_dir / "render" / config.split
    start = time.perf_counter()
    written = 0
    if progress:
        progress(config.n - len(todo), config.n)
    with jsonl.open("a", encoding="utf-8") as handle:
        for item in _generate(config, todo):
            if config.render:
                item["meta"]["render"] = os.path.relpath(_render(item, render_dir), out_dir)
            # One write per line, flushed: an interruption can tear at most the last line.
            handle.write(json.dumps(item, separators=(",", ":"), ensure_ascii=False) + "\n")
            handle.flush()
            written += 1
            if progress:
                progress(config.n - len(todo) + written, config.n)
    elapsed = time.perf_counter() - start
    stats = split_stats(jsonl)
    stats["generation"] = {"items_written": written, "seconds": round(elapsed, 2),
                           "items_per_second": round(written / elapsed, 2) if elapsed > 0 and written else None,
                           "workers": config.workers}
    atomic_write_json(out_dir / f"{config.split}.stats.json", stats, indent=2, sort_keys=True)
    return stats


def _generate(config: SynthConfig, indices: list[int]) -> Iterator[dict[str, Any]]:
    if config.workers <= 1 or len(indices) < 8:
        kb = load_knowledge()
        held_out = holdout_categories(kb)
        for index in indices:
            yield generate_item(config, index, kb, held_out)
        return
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(config.workers, initializer=_worker_init,
                                                  initargs=(config.to_dict(),)) as pool:
        yield from pool.imap(_worker_item, indices, chunksize=4)


def split_stats(jsonl: str | Path) -> dict[str, Any]:
    """Counts by category x level, holdout and intent, and teacher-chain length estimates, of a JSONL file."""
    from fastreasonseg.data.items import iter_item_dicts
    from fastreasonseg.data.teacher import rollout_token_stats

    cells: Counter = Counter()
    holdouts: Counter = Counter()
    intents: Counter = Counter()
    sentences = 0
    texts = []
    ious = []
    n = 0
    for _, item in iter_item_dicts(jsonl):
        n += 1
        cells[f"{item['category']}/L{item['level']}"] += 1
        holdouts[str(item["holdout"])] += 1
        intents[item["meta"]["intent"]] += 1
        sentences += bool(item["is_sentence"])
        texts.append(item["teacher"])
        ious.append(item["meta"].get("teacher_iou", 1.0))
    return {"n": n, "category_level": dict(sorted(cells.items())), "holdout": dict(holdouts),
            "intents": dict(sorted(intents.items())), "sentence_share": round(sentences / n, 3) if n else None,
            "teacher_tokens_estimate": rollout_token_stats(texts),
            "teacher_iou_mean": round(float(np.mean(ious)), 4) if ious else None,
            "teacher_iou_over_0.7": round(float(np.mean(np.array(ious) > 0.7)), 4) if ious else None}
