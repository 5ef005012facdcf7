"""ReasonSeg (LISA) loaders: the original folder layout and the Hugging Face parquet variant.

Folder layout (LISA, ``{root}/{train,val,test}/X.jpg`` + ``X.json``)::

    {"text": ["what can hold water?", ...], "is_sentence": false,
     "shapes": [{"label": "target", "points": [[x, y], ...]}, {"label": "ignore", ...}, ...]}

The ground truth follows LISA's ``utils/data_processing.py get_mask_from_json`` exactly:
shapes labelled ``flag`` (case-insensitive) are skipped; the rest are sorted by area,
largest first, and painted in that order (``cv2.polylines`` thickness 1 then
``cv2.fillPoly``, points truncated to int32) with 255 for labels containing ``ignore`` and
1 for anything else, so a small ignore region inside a target (or the reverse) wins. The
gt mask is ``== 1`` and the ignore mask ``== 255``. The canvas is the image as ``cv2.imread``
sees it (EXIF orientation applied). Like LISA's ValDataset, evaluation uses the first
query of each image (``queries="first"``); ``queries="all"`` yields one sample per query.
``length`` is "long" when ``is_sentence`` is true, else "short". One departure: LISA sorts
areas with NumPy's default (unstable) argsort; we use a stable sort, which only matters for
two overlapping shapes of exactly equal area and different labels.

Parquet layout (e.g. the Seg-Zero/VisionReasoner ``ReasonSeg_test``/``ReasonSeg_val``
datasets): one row per query with columns ``image`` (HF Image struct ``{bytes, path}`` or a
path string), ``text``, ``mask`` (boolean ``list<list<bool>>`` HxW; a flat list with
``img_height``/``img_width``, a PNG struct or a COCO RLE struct also work), ``image_id``,
``ann_id``, ``img_height``, ``img_width``. Every column name is configurable in
:class:`ReasonSegParquetConfig`. These files carry no ignore regions and no ``is_sentence``
unless a column is named for it. Embedded image bytes are written once to
``image_cache_dir`` because the pipeline consumes image paths.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
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
    check_rle,
    decode_rle_checked,
    get_field,
    image_size,
    read_json,
    type_name,
)

LISA_IGNORE_VALUE = 255
LISA_TARGET_VALUE = 1


@dataclass(frozen=True)
class ReasonSegShape:
    """One non-flag labelme shape: ``ignore`` or target, points as int32 (N, 2) XY pixels."""

    label: str
    points: np.ndarray

    @property
    def is_ignore(self) -> bool:
        return "ignore" in self.label.lower()


def rasterise_lisa_shapes(shapes: list[ReasonSegShape], height: int, width: int) -> np.ndarray:
    """LISA's label map (uint8 HxW: 0 background, 1 target, 255 ignore) from non-flag shapes."""
    import cv2

    def draw(canvas: np.ndarray, shape: ReasonSegShape, value: int) -> None:
        polygon = shape.points[None]  # (1, N, 2), the layout LISA passes to OpenCV
        cv2.polylines(canvas, polygon, True, value, 1)
        cv2.fillPoly(canvas, polygon, value)

    areas = []
    for shape in shapes:
        scratch = np.zeros((height, width), dtype=np.uint8)
        draw(scratch, shape, 1)
        areas.append(int(scratch.sum()))
    label_map = np.zeros((height, width), dtype=np.uint8)
    for index in np.argsort(np.asarray(areas, dtype=np.int64), kind="stable")[::-1]:
        shape = shapes[int(index)]
        draw(label_map, shape, LISA_IGNORE_VALUE if shape.is_ignore else LISA_TARGET_VALUE)
    return label_map


def shape_mask(shape: ReasonSegShape, height: int, width: int) -> np.ndarray:
    """One shape on its own, drawn the LISA way, as bool (H, W)."""
    import cv2

    canvas = np.zeros((height, width), dtype=np.uint8)
    cv2.polylines(canvas, shape.points[None], True, 1, 1)
    cv2.fillPoly(canvas, shape.points[None], 1)
    return canvas.astype(bool)


# --------------------------------------------------------------------------- folder layout


@dataclass
class ReasonSegConfig:
    """Options of the LISA folder loader.

    queries: "first" (LISA's evaluation: the first text of each image) or "all" (one sample
    per text). length: keep only "short" or "long" queries (None keeps both).
    """

    queries: Literal["first", "all"] = "first"
    length: Literal["short", "long"] | None = None
    image_ext: str = ".jpg"

    def __post_init__(self) -> None:
        if self.queries not in ("first", "all"):
            raise BenchmarkError(f"reasonseg option queries must be 'first' or 'all', got {self.queries!r}")
        if self.length is not None and self.length not in LENGTHS:
            raise BenchmarkError(f"reasonseg option length must be 'short', 'long' or None, got {self.length!r}")
        if not self.image_ext.startswith("."):
            raise BenchmarkError(f"reasonseg option image_ext must start with '.', got {self.image_ext!r}")


@dataclass(frozen=True)
class _ReasonSegRecord:
    image_path: Path
    json_path: Path
    texts: tuple[str, ...]
    is_sentence: bool
    shapes: tuple[ReasonSegShape, ...]
    num_flags: int


class _LisaMasks(MaskSource):
    def __init__(self, record: _ReasonSegRecord):
        self.record = record
        self._label_map = FrameCache(self._rasterise, size=1)

    def _size(self) -> tuple[int, int]:
        return image_size(self.record.image_path)

    def _rasterise(self, frame: int) -> np.ndarray:
        height, width = self._size()
        return rasterise_lisa_shapes(list(self.record.shapes), height, width)

    def target(self, frame: int) -> np.ndarray:
        return self._label_map(frame) == LISA_TARGET_VALUE

    def ignore(self, frame: int) -> np.ndarray | None:
        return self._label_map(frame) == LISA_IGNORE_VALUE

    def instances(self, frame: int) -> dict[int, np.ndarray]:
        height, width = self._size()
        targets = [s for s in self.record.shapes if not s.is_ignore]
        return {k + 1: shape_mask(shape, height, width) for k, shape in enumerate(targets)}


def parse_reasonseg_json(path: Path) -> tuple[tuple[str, ...], bool, tuple[ReasonSegShape, ...], int]:
    """Validate one LISA annotation: (texts, is_sentence, non-flag shapes, number of flag shapes)."""
    # LISA retries with cp1252 when UTF-8 fails: some ReasonSeg files are not UTF-8.
    data = read_json(path, encodings=("utf-8", "cp1252"))
    if not isinstance(data, dict):
        raise BenchmarkFormatError(path, None, f"expected a JSON object, got {type_name(data)}")
    raw_texts = get_field(data, "text", path, "", (list, str))
    raw_texts = [raw_texts] if isinstance(raw_texts, str) else raw_texts
    if not raw_texts:
        raise BenchmarkFormatError(path, "text", "empty list: the image has no query")
    texts = []
    for k, text in enumerate(raw_texts):
        if not isinstance(text, str) or not text.strip():
            raise BenchmarkFormatError(path, f"text[{k}]", f"expected a non-empty string, got {type_name(text)}")
        texts.append(text.strip())
    is_sentence = get_field(data, "is_sentence", path, "", bool)
    raw_shapes = get_field(data, "shapes", path, "", list)
    shapes, flags = [], 0
    for k, raw in enumerate(raw_shapes):
        label = get_field(raw, "label", path, f"shapes[{k}]", str)
        points = get_field(raw, "points", path, f"shapes[{k}]", list)
        if label.lower() == "flag":  # LISA: "meaningless deprecated annotations"
            flags += 1
            continue
        if not points:
            raise BenchmarkFormatError(path, f"shapes[{k}].points", "empty polygon")
        for j, point in enumerate(points):
            if (not isinstance(point, list) or len(point) != 2
                    or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in point)):
                raise BenchmarkFormatError(path, f"shapes[{k}].points[{j}]",
                                           f"expected [x, y] numbers, got {type_name(point)} {point!r}"[:160])
        # Truncation toward zero, as LISA's np.array(points, dtype=np.int32) does.
        shapes.append(ReasonSegShape(label=label, points=np.asarray(points, dtype=np.float64).astype(np.int32)))
    return tuple(texts), is_sentence, tuple(shapes), flags


class ReasonSegBenchmark(Benchmark):
    """LISA's ReasonSeg folder layout ``{root}/{split}/X.jpg + X.json``."""

    name: ClassVar[str] = "reasonseg"
    default_split: ClassVar[str | None] = "val"
    config_class: ClassVar[type] = ReasonSegConfig
    config: ReasonSegConfig

    def __init__(self, root: str | Path, split: str | None = None, config: ReasonSegConfig | None = None, **kwargs: Any):
        super().__init__(root, split, config, **kwargs)
        split_dir = self.root / str(self.split)
        if not split_dir.is_dir():
            present = sorted(p.name for p in self.root.iterdir() if p.is_dir())
            raise BenchmarkError(f"{self.benchmark_name}: split directory {split_dir} not found "
                                 f"(subdirectories of {self.root}: {', '.join(present) or 'none'})")
        images = sorted(split_dir.glob(f"*{self.config.image_ext}"))
        if not images:
            raise BenchmarkError(f"{self.benchmark_name}: no *{self.config.image_ext} images in {split_dir}")
        self.records: list[_ReasonSegRecord] = []
        for image_path in images:
            json_path = image_path.with_suffix(".json")
            if not json_path.is_file():
                raise BenchmarkError(f"{image_path}: annotation {json_path.name} not found next to the image")
            texts, is_sentence, shapes, flags = parse_reasonseg_json(json_path)
            self.records.append(_ReasonSegRecord(image_path, json_path, texts, is_sentence, shapes, flags))
        self._items: list[tuple[int, int]] = []
        for r, record in enumerate(self.records):
            if self.config.length is not None and _length(record.is_sentence) != self.config.length:
                continue
            query_indices = range(len(record.texts)) if self.config.queries == "all" else range(1)
            self._items.extend((r, q) for q in query_indices)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[BenchmarkSample]:
        for r, q in self._items:
            record = self.records[r]
            yield BenchmarkSample(
                benchmark=self.benchmark_name,
                sample_id=f"{record.image_path.stem}#{q}",
                frame_paths=(record.image_path,),
                query=record.texts[q],
                length=_length(record.is_sentence),
                object_ids=tuple(range(1, sum(not s.is_ignore for s in record.shapes) + 1)),
                metadata={"annotation": str(record.json_path), "query_index": q, "num_queries": len(record.texts),
                          "num_flag_shapes": record.num_flags},
                masks=_LisaMasks(record),
            )


def _length(is_sentence: bool | None) -> Literal["short", "long"] | None:
    if is_sentence is None:
        return None
    return "long" if is_sentence else "short"


# --------------------------------------------------------------------------- parquet variant


@dataclass
class ReasonSegParquetConfig:
    """Column mapping of a ReasonSeg parquet export (defaults: the Seg-Zero HF datasets).

    image_column: HF Image struct ``{bytes, path}`` or a path string (relative to the parquet
    file's folder or the root). query_column: the query text. mask_column: the gt mask.
    id_columns: joined with "_" into the sample id (empty: "<file stem>:<row>").
    is_sentence_column: a boolean column giving short/long (None: length unknown).
    height_column / width_column: image size columns used to check (or reshape a flat) mask;
    None when the file has none. image_cache_dir: where embedded image bytes are written, one
    subfolder per parquet file (default: ``fastreasonseg-benchmarks`` in the system temp dir).
    """

    image_column: str = "image"
    query_column: str = "text"
    mask_column: str = "mask"
    id_columns: tuple[str, ...] = ("image_id", "ann_id")
    is_sentence_column: str | None = None
    height_column: str | None = "img_height"
    width_column: str | None = "img_width"
    image_cache_dir: str | Path | None = None
    batch_size: int = 16

    def __post_init__(self) -> None:
        self.id_columns = tuple(self.id_columns)
        for name in ("image_column", "query_column", "mask_column"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise BenchmarkError(f"reasonseg_parquet option {name} must be a column name, got {value!r}")
        for name in ("is_sentence_column", "height_column", "width_column"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise BenchmarkError(f"reasonseg_parquet option {name} must be a column name or None, got {value!r}")
        if (self.height_column is None) != (self.width_column is None):
            raise BenchmarkError("reasonseg_parquet options height_column and width_column must both be set or "
                                 "both be None")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise BenchmarkError(f"reasonseg_parquet option batch_size must be a positive integer, got "
                                 f"{self.batch_size!r}")

    @property
    def columns(self) -> list[str]:
        names = [self.image_column, self.query_column, self.mask_column, *self.id_columns,
                 self.is_sentence_column, self.height_column, self.width_column]
        return list(dict.fromkeys(n for n in names if n is not None))


class _ParquetMasks(MaskSource):
    """Decodes one row's mask cell (kept as an Arrow scalar until asked)."""

    def __init__(self, cell: Any, file: Path, where: str, size: tuple[int, int] | None):
        self.cell = cell
        self.file = file
        self.where = where
        self.size = size
        self._decoded = FrameCache(self._decode, size=1)

    def _decode(self, frame: int) -> np.ndarray:
        mask = _arrow_mask(self.cell, self.file, self.where, self.size)
        if self.size is not None and mask.shape != self.size:
            raise BenchmarkFormatError(self.file, self.where, f"mask is {mask.shape[0]}x{mask.shape[1]} but the "
                                                              f"row's height/width say {self.size[0]}x{self.size[1]}")
        return mask

    def target(self, frame: int) -> np.ndarray:
        return self._decoded(frame)

    def instances(self, frame: int) -> dict[int, np.ndarray]:
        # The export merges all targets into one mask; objects cannot be separated.
        return {1: self._decoded(frame)}


def _arrow_mask(cell: Any, file: Path, where: str, size: tuple[int, int] | None) -> np.ndarray:
    """A mask cell as bool (H, W): nested bool lists, flat list + size, PNG struct or RLE struct."""
    import pyarrow as pa

    list_types = (pa.ListType, pa.LargeListType)
    if not cell.is_valid:
        raise BenchmarkFormatError(file, where, "mask is null")
    if isinstance(cell.type, list_types) and isinstance(cell.type.value_type, list_types):
        rows = cell.values
        lengths = np.diff(rows.offsets.to_numpy())
        if len(lengths) == 0 or len(set(lengths.tolist())) != 1 or lengths[0] == 0:
            raise BenchmarkFormatError(file, where, f"expected an HxW nested list with equal non-empty rows, got row "
                                                    f"lengths {sorted(set(lengths.tolist()))[:5]}")
        flat = rows.flatten()
        if flat.null_count:
            raise BenchmarkFormatError(file, where, f"mask has {flat.null_count} null pixels")
        return np.asarray(flat.to_numpy(zero_copy_only=False)).reshape(len(rows), int(lengths[0])).astype(bool)
    if isinstance(cell.type, list_types):
        flat = cell.values
        if size is None:
            raise BenchmarkFormatError(file, where, "mask is a flat list; set height_column and width_column so it "
                                                    "can be reshaped")
        if len(flat) != size[0] * size[1] or flat.null_count:
            raise BenchmarkFormatError(file, where, f"flat mask has {len(flat)} values ({flat.null_count} null), "
                                                    f"expected {size[0]}x{size[1]}")
        return np.asarray(flat.to_numpy(zero_copy_only=False)).reshape(size).astype(bool)
    if isinstance(cell.type, pa.StructType):
        value = cell.as_py()
        if value.get("bytes"):
            return _png_mask(value["bytes"], file, where)
        if "counts" in value and "size" in value:
            return decode_rle_checked(check_rle(value, file, where), file, where)
    raise BenchmarkFormatError(file, where, f"unsupported mask type {cell.type}; expected list<list<bool>>, a flat "
                                            f"list, an image struct or a COCO RLE struct")


def _png_mask(data: bytes, file: Path, where: str) -> np.ndarray:
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError) as exc:
        raise BenchmarkFormatError(file, where, f"mask bytes are not an image ({exc})") from None
    if array.ndim == 3:
        array = array.max(axis=2)
    return array > 0


class ReasonSegParquetBenchmark(Benchmark):
    """ReasonSeg exported to parquet (one row per query), read row group by row group."""

    name: ClassVar[str] = "reasonseg_parquet"
    default_split: ClassVar[str | None] = None
    config_class: ClassVar[type] = ReasonSegParquetConfig
    config: ReasonSegParquetConfig

    def __init__(self, root: str | Path, split: str | None = None, config: ReasonSegParquetConfig | None = None,
                 **kwargs: Any):
        import pyarrow.parquet as pq

        super().__init__(root, split, config, **kwargs)
        self.files = self._find_files()
        self._rows: list[int] = []
        for file in self.files:
            try:
                parquet = pq.ParquetFile(file)
            except Exception as exc:  # pyarrow raises ArrowInvalid/OSError variants on corrupt files
                raise BenchmarkFormatError(file, None, f"not a readable parquet file ({exc})") from None
            names = set(parquet.schema_arrow.names)
            missing = [c for c in self.config.columns if c not in names]
            if missing:
                raise BenchmarkFormatError(file, missing[0], f"column missing (columns present: "
                                                             f"{', '.join(sorted(names))}); map the columns with "
                                                             f"ReasonSegParquetConfig or set optional ones to None")
            self._rows.append(parquet.metadata.num_rows)

    def _find_files(self) -> list[Path]:
        if self.root.is_file():
            return [self.root]
        files = sorted(self.root.rglob("*.parquet"))
        if not files:
            raise BenchmarkError(f"{self.benchmark_name}: no .parquet files under {self.root}")
        if self.split is None:
            return files
        # HF layout: data/{split}-00000-of-00001.parquet (or a {split}/ folder).
        pattern = re.compile(rf"^{re.escape(self.split)}([-_.]|$)")
        chosen = [f for f in files if pattern.match(f.stem) or f.parent.name == self.split]
        if not chosen:
            raise BenchmarkError(f"{self.benchmark_name}: no parquet file for split {self.split!r} under {self.root} "
                                 f"(found: {', '.join(f.name for f in files[:8])})")
        return chosen

    def __len__(self) -> int:
        return sum(self._rows)

    def _cache_dir(self, file: Path) -> Path:
        base = self.config.image_cache_dir
        base = Path(tempfile.gettempdir()) / "fastreasonseg-benchmarks" if base is None else Path(base)
        # One folder per parquet file: row ids repeat across files (val and test both start at 0).
        digest = hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:12]
        return base / f"{file.stem}-{digest}"

    def __iter__(self) -> Iterator[BenchmarkSample]:
        import pyarrow.parquet as pq

        cfg = self.config
        for file in self.files:
            row = 0
            for batch in pq.ParquetFile(file).iter_batches(batch_size=cfg.batch_size, columns=cfg.columns):
                columns = {name: batch.column(name) for name in cfg.columns}
                for i in range(batch.num_rows):
                    yield self._sample(file, row, {name: col[i] for name, col in columns.items()})
                    row += 1

    def _sample(self, file: Path, row: int, cells: dict[str, Any]) -> BenchmarkSample:
        cfg = self.config
        where = f"row {row}"
        query = cells[cfg.query_column].as_py()
        if not isinstance(query, str) or not query.strip():
            raise BenchmarkFormatError(file, f"{where}.{cfg.query_column}", f"expected a non-empty string, got "
                                                                            f"{type_name(query)}")
        ids = {c: cells[c].as_py() for c in cfg.id_columns}
        sample_id = "_".join(str(v) for v in ids.values()) if ids else f"{file.stem}:{row}"
        size = None
        if cfg.height_column is not None and cfg.width_column is not None:
            height, width = cells[cfg.height_column].as_py(), cells[cfg.width_column].as_py()
            for name, value in ((cfg.height_column, height), (cfg.width_column, width)):
                if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                    raise BenchmarkFormatError(file, f"{where}.{name}", f"expected a positive integer, got {value!r}")
            size = (height, width)
        length = None
        if cfg.is_sentence_column is not None:
            is_sentence = cells[cfg.is_sentence_column].as_py()
            if not isinstance(is_sentence, bool):
                raise BenchmarkFormatError(file, f"{where}.{cfg.is_sentence_column}",
                                           f"expected true or false, got {is_sentence!r}")
            length = _length(is_sentence)
        image_path = self._image_path(file, row, sample_id, cells[cfg.image_column].as_py())
        return BenchmarkSample(
            benchmark=self.benchmark_name,
            sample_id=sample_id,
            frame_paths=(image_path,),
            query=query.strip(),
            length=length,
            object_ids=(1,),
            metadata={"file": str(file), "row": row, **ids},
            masks=_ParquetMasks(cells[cfg.mask_column], file, f"{where}.{cfg.mask_column}", size),
        )

    def _image_path(self, file: Path, row: int, sample_id: str, value: Any) -> Path:
        where = f"row {row}.{self.config.image_column}"
        if isinstance(value, str):
            return self._resolve(file, where, value)
        if isinstance(value, dict):
            data, name = value.get("bytes"), value.get("path")
            if data:
                return self._extract(file, where, sample_id, data, name)
            if isinstance(name, str) and name:
                return self._resolve(file, where, name)
        raise BenchmarkFormatError(file, where, f"expected an image struct with bytes or path, or a path string, got "
                                                f"{type_name(value)}")

    def _resolve(self, file: Path, where: str, name: str) -> Path:
        for base in (file.parent, self.root if self.root.is_dir() else self.root.parent):
            candidate = base / name
            if candidate.is_file():
                return candidate
        raise BenchmarkFormatError(file, where, f"image {name!r} not found next to the parquet file or under the root")

    def _extract(self, file: Path, where: str, sample_id: str, data: bytes, name: str | None) -> Path:
        suffix = Path(name).suffix.lower() if isinstance(name, str) and Path(name).suffix else _sniff_suffix(data)
        if suffix is None:
            raise BenchmarkFormatError(file, where, "image bytes are neither JPEG nor PNG and carry no file name")
        cache = self._cache_dir(file)
        cache.mkdir(parents=True, exist_ok=True)
        safe_id = re.sub(r"[^A-Za-z0-9._-]+", "_", sample_id)
        target = cache / f"{safe_id}{suffix}"
        if not target.is_file() or target.stat().st_size != len(data):
            partial = target.with_name(target.name + ".partial")
            partial.write_bytes(data)
            partial.replace(target)  # atomic: a reader never sees half an image
        return target


def _sniff_suffix(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    if data.startswith(b"\x89PNG"):
        return ".png"
    return None
