"""DAVIS-style video benchmarks with a query file (JiTBench, RVTBench and the like).

Layout::

    {root}/JPEGImages/<video>/<frame>.jpg
    {root}/Annotations/<video>/<frame>.png      indexed-palette PNG: pixel value = object id
    {root}/<query file>.json                    queries over those videos

Frames and masks follow the DAVIS 2017 toolkit (``davis2017/davis.py``): frames in sorted
file-name order, a mask PNG read as its palette indices, 0 background, 255 void (scored as
ignore pixels; ``ignore_value=None`` turns that off). A query's gt mask is the union of its
target object ids. JiTBench's and RVTBench's query files are not public here, so the field
mapping is the :class:`DavisQueryConfig` dataclass; the default reads::

    [{"id": "q1", "video": "bear", "query": "...", "object_ids": [1], "category": "spatial", "level": 2}]

or the same records under a key (``records_key``) or as an object keyed by id. Fields may be
dotted paths (``"meta.level"``); category and level are carried through as strings.
Departure: with ``frames="annotated"`` (default) only frames that have a mask PNG are part of
the sample, so media and gt stay aligned for sparsely annotated sets (SA-V annotates every
4th frame); ``frames="all"`` requires a mask for every JPEG.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from fastreasonseg.data.benchmarks.base import (
    LENGTHS,
    Benchmark,
    BenchmarkError,
    BenchmarkFormatError,
    BenchmarkSample,
    FrameCache,
    MaskSource,
    get_field,
    parse_ids,
    read_json,
    type_name,
)


@dataclass
class DavisQueryConfig:
    """Where the files are and which query-JSON field holds what.

    query_file: relative to the root (``{split}`` is replaced by the split name).
    records_key: dotted key of the record list/object in the file (None: the top level).
    id_field: record id (None, or records in an object keyed by id: ``<video>#<n>`` / the key).
    query_field, video_field, object_ids_field (an int or a list of ints; empty = no target).
    category_field, level_field, is_sentence_field: optional (None: not in the file); when set,
    every record must have the key (null allowed).
    frames: "annotated" (frames with a mask PNG) or "all" (every JPEG; each needs a mask).
    ignore_value: palette index scored as ignore (DAVIS void 255), or None.
    """

    query_file: str = "queries.json"
    records_key: str | None = None
    id_field: str | None = "id"
    query_field: str = "query"
    video_field: str = "video"
    object_ids_field: str = "object_ids"
    category_field: str | None = "category"
    level_field: str | None = "level"
    is_sentence_field: str | None = None
    image_dir: str = "JPEGImages"
    annotation_dir: str = "Annotations"
    image_ext: str = ".jpg"
    frames: Literal["annotated", "all"] = "annotated"
    ignore_value: int | None = 255

    def __post_init__(self) -> None:
        for name in ("query_file", "query_field", "video_field", "object_ids_field", "image_dir", "annotation_dir"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise BenchmarkError(f"davis option {name} must be a non-empty string, got {value!r}")
        for name in ("records_key", "id_field", "category_field", "level_field", "is_sentence_field"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise BenchmarkError(f"davis option {name} must be a field name or None, got {value!r}")
        if self.frames not in ("annotated", "all"):
            raise BenchmarkError(f"davis option frames must be 'annotated' or 'all', got {self.frames!r}")
        if self.ignore_value is not None and (isinstance(self.ignore_value, bool) or
                                              not isinstance(self.ignore_value, int) or
                                              not 0 < self.ignore_value <= 255):
            raise BenchmarkError(f"davis option ignore_value must be a palette index in 1..255 or None, got "
                                 f"{self.ignore_value!r}")
        if not self.image_ext.startswith("."):
            raise BenchmarkError(f"davis option image_ext must start with '.', got {self.image_ext!r}")


@dataclass(frozen=True)
class _Query:
    sample_id: str
    video: str
    text: str
    object_ids: tuple[int, ...]
    category: str | None
    level: str | None
    length: Literal["short", "long"] | None
    index: int


@dataclass(frozen=True)
class _VideoFrames:
    names: tuple[str, ...]
    images: tuple[Path, ...]
    annotations: tuple[Path, ...]


def read_palette_png(path: Path) -> np.ndarray:
    """An indexed annotation PNG as its (H, W) integer indices (DAVIS: value = object id)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            mode = image.mode
            array = np.asarray(image)
    except FileNotFoundError:
        raise BenchmarkError(f"{path}: annotation not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise BenchmarkFormatError(path, None, f"not a readable PNG ({exc})") from None
    # "P" is the DAVIS palette PNG; single-channel "L"/"I" PNGs hold the same ids directly.
    if mode not in ("P", "L", "I", "I;16", "I;16B") or array.ndim != 2:
        raise BenchmarkFormatError(path, None, f"expected an indexed-palette (mode P) or single-channel PNG whose "
                                               f"values are object ids, got mode {mode}")
    return array.astype(np.int64)


class _PaletteMasks(MaskSource):
    def __init__(self, annotations: tuple[Path, ...], object_ids: tuple[int, ...], ignore_value: int | None):
        self.annotations = annotations
        self.object_ids = object_ids
        self.ignore_value = ignore_value
        self._ids = FrameCache(lambda frame: read_palette_png(self.annotations[frame]))

    def target(self, frame: int) -> np.ndarray:
        # An empty id list is a no-target query: an all-False mask of the frame's size.
        return np.isin(self._ids(frame), np.asarray(self.object_ids, dtype=np.int64))

    def ignore(self, frame: int) -> np.ndarray | None:
        if self.ignore_value is None:
            return None
        return self._ids(frame) == self.ignore_value

    def instances(self, frame: int) -> dict[int, np.ndarray]:
        ids = self._ids(frame)
        present = [int(v) for v in np.unique(ids) if v != 0 and v != self.ignore_value]
        return {object_id: ids == object_id for object_id in present}


class DavisQueryBenchmark(Benchmark):
    """Queries over DAVIS-layout videos; registered as ``davis``, ``jitbench`` and ``rvtbench``."""

    name: ClassVar[str] = "davis"
    default_split: ClassVar[str | None] = None
    config_class: ClassVar[type] = DavisQueryConfig
    config: DavisQueryConfig

    def __init__(self, root: str | Path, split: str | None = None, config: DavisQueryConfig | None = None,
                 **kwargs: Any):
        super().__init__(root, split, config, **kwargs)
        cfg = self.config
        name = cfg.query_file.replace("{split}", str(self.split)) if self.split is not None else cfg.query_file
        if "{split}" in name:
            raise BenchmarkError(f"{self.benchmark_name}: query_file {cfg.query_file!r} needs a split")
        self.query_path = self.root / name
        self.image_root = self.root / cfg.image_dir
        self.annotation_root = self.root / cfg.annotation_dir
        for folder in (self.image_root, self.annotation_root):
            if not folder.is_dir():
                raise BenchmarkError(f"{self.benchmark_name}: folder {folder} not found")
        self.queries = self._read_queries()
        self._videos: dict[str, _VideoFrames] = {}

    def _records(self, data: Any) -> list[tuple[str | None, Any]]:
        file = self.query_path
        if self.config.records_key is not None:
            data = get_field(data, self.config.records_key, file, "", (list, dict))
        if isinstance(data, list):
            return [(None, record) for record in data]
        if isinstance(data, dict) and all(isinstance(record, dict) for record in data.values()):
            return [(str(key), record) for key, record in data.items()]
        if isinstance(data, dict):
            raise BenchmarkFormatError(file, self.config.records_key, "expected a list of query records or an object "
                                                                      "keyed by id whose values are records; if the "
                                                                      "records sit under a key, set records_key")
        raise BenchmarkFormatError(file, self.config.records_key, f"expected a list of query records or an object "
                                                                  f"keyed by id, got {type_name(data)}")

    def _read_queries(self) -> list[_Query]:
        cfg, file = self.config, self.query_path
        queries = []
        for index, (key, record) in enumerate(self._records(read_json(file))):
            where = f"[{key!r}]" if key is not None else f"[{index}]"
            if cfg.records_key:
                where = f"{cfg.records_key}{where}"
            video = get_field(record, cfg.video_field, file, where, (str, int))
            text = get_field(record, cfg.query_field, file, where, str)
            if not text.strip():
                raise BenchmarkFormatError(file, f"{where}.{cfg.query_field}", "empty query")
            ids_where = f"{where}.{cfg.object_ids_field}"
            object_ids = parse_ids(get_field(record, cfg.object_ids_field, file, where), file, ids_where)
            if any(i <= 0 or i == cfg.ignore_value for i in object_ids):
                raise BenchmarkFormatError(file, ids_where, f"object ids must be positive palette indices other than "
                                                            f"the ignore value {cfg.ignore_value}, got {list(object_ids)}")
            if key is not None:
                sample_id = key
            elif cfg.id_field is not None:
                sample_id = str(get_field(record, cfg.id_field, file, where, (str, int)))
            else:
                sample_id = f"{video}#{index}"
            category = self._optional_text(record, cfg.category_field, where)
            level = self._optional_text(record, cfg.level_field, where)
            length = None
            if cfg.is_sentence_field is not None:
                is_sentence = get_field(record, cfg.is_sentence_field, file, where, (bool, str), allow_none=True)
                if isinstance(is_sentence, str) and is_sentence not in LENGTHS:
                    raise BenchmarkFormatError(file, f"{where}.{cfg.is_sentence_field}", f"expected true/false or "
                                                                                        f"'short'/'long', got "
                                                                                        f"{is_sentence!r}")
                length = (is_sentence if isinstance(is_sentence, str)
                          else None if is_sentence is None else ("long" if is_sentence else "short"))
            queries.append(_Query(sample_id, str(video), text.strip(), object_ids, category, level, length, index))
        return queries

    def _optional_text(self, record: Any, field_name: str | None, where: str) -> str | None:
        if field_name is None:
            return None
        value = get_field(record, field_name, self.query_path, where, (str, int, float), allow_none=True)
        return None if value is None else str(value)

    def _frames(self, video: str) -> _VideoFrames:
        if video in self._videos:
            return self._videos[video]
        cfg = self.config
        image_folder, annotation_folder = self.image_root / video, self.annotation_root / video
        if not image_folder.is_dir():
            raise BenchmarkError(f"{self.query_path}: video {video!r} has no frame folder {image_folder}")
        if not annotation_folder.is_dir():
            raise BenchmarkError(f"{self.query_path}: video {video!r} has no annotation folder {annotation_folder}")
        images = {p.stem: p for p in image_folder.glob(f"*{cfg.image_ext}")}
        masks = {p.stem: p for p in annotation_folder.glob("*.png")}
        if cfg.frames == "all":
            missing = sorted(set(images) - set(masks))
            if missing:
                raise BenchmarkError(f"{annotation_folder}: no mask PNG for {len(missing)} frame(s), e.g. "
                                     f"{missing[0]}.png (use frames='annotated' for sparsely annotated videos)")
            names = sorted(images)
        else:
            names = sorted(set(images) & set(masks))
        if not names:
            raise BenchmarkError(f"{self.query_path}: video {video!r} has no frame with both a {cfg.image_ext} image "
                                 f"and a mask PNG")
        frames = _VideoFrames(tuple(names), tuple(images[n] for n in names), tuple(masks[n] for n in names))
        self._videos[video] = frames
        return frames

    def __len__(self) -> int:
        return len(self.queries)

    def __iter__(self) -> Iterator[BenchmarkSample]:
        for query in self.queries:
            frames = self._frames(query.video)
            yield BenchmarkSample(
                benchmark=self.benchmark_name,
                sample_id=query.sample_id,
                frame_paths=frames.images,
                frame_names=frames.names,
                query=query.text,
                length=query.length,
                category=query.category,
                level=query.level,
                object_ids=query.object_ids,
                metadata={"video": query.video, "record_index": query.index},
                masks=_PaletteMasks(frames.annotations, query.object_ids, self.config.ignore_value),
            )
