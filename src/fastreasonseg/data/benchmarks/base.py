"""The one sample type every benchmark loader yields, its errors, and shared file helpers.

A :class:`BenchmarkSample` is one query over one image or one ordered list of video frames,
with lazily decoded ground truth: ``gt_mask(frame)`` (bool HxW), ``ignore_mask(frame)``
(bool HxW or None; pixels the metric must skip, LISA's 255 and DAVIS' void) and
``instance_masks(frame)`` (every annotated object of that frame by its annotation id, the
raw material of an annotation twin whose answer is ``sample.object_ids``). Nothing is
decoded until asked for, so iterating a benchmark to read its queries costs no mask work.

Loaders are :class:`Benchmark` subclasses: iterables with ``len()`` built from a root
directory and a typed config. Every malformed file raises :class:`BenchmarkFormatError`
naming the file and the field; a missing file or directory raises :class:`BenchmarkError`.
Both are :class:`~fastreasonseg.errors.FrsError`, so the CLI prints them without a traceback.

Not in the paper: the paper names its benchmarks but not how it reads them; the formats
follow each benchmark's public reference code (cited in each loader's docstring).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from fastreasonseg.errors import FrsError

Length = Literal["short", "long"]
LENGTHS: tuple[str, ...] = ("short", "long")


class BenchmarkError(FrsError):
    """A benchmark cannot be loaded: missing directory or file, unknown name or option."""


class BenchmarkFormatError(BenchmarkError):
    """A benchmark file is malformed; ``file`` and ``field`` say where, ``problem`` what."""

    def __init__(self, file: str | Path, field: str | None, problem: str):
        self.file = str(file)
        self.field = field
        self.problem = problem
        where = self.file if field is None else f"{self.file}: field {field}"
        super().__init__(f"{where}: {problem}")


# --------------------------------------------------------------------------- ground truth


class MaskSource(ABC):
    """Decodes one sample's ground truth on demand (one subclass per benchmark format)."""

    @abstractmethod
    def target(self, frame: int) -> np.ndarray:
        """The answer's mask in ``frame``: bool (H, W), the union of all target objects."""

    def ignore(self, frame: int) -> np.ndarray | None:
        """Pixels excluded from scoring in ``frame`` (bool (H, W)), or None when there are none."""
        return None

    @abstractmethod
    def instances(self, frame: int) -> dict[int, np.ndarray]:
        """Every annotated object visible in ``frame`` by annotation id (bool (H, W) each)."""


@dataclass(frozen=True, kw_only=True)
class BenchmarkSample:
    """One benchmark query with its media and lazily decoded ground truth.

    ``frame_paths`` has one path for an image and the ordered frames for a video;
    ``frame_names`` are the matching frame names (file stems). ``length`` is "short" for a
    phrase and "long" for a sentence (ReasonSeg's ``is_sentence``), None when the benchmark
    does not say. ``category`` and ``level`` are carried through as strings (ReVOS:
    referring / reasoning / no_target; JiTBench: semantic / spatial / temporal and L1-L3).
    ``object_ids`` are the target ids in the id space of :meth:`instance_masks`;
    ``metadata`` keeps format-specific fields (answer text, source dataset, file, ...).
    """

    benchmark: str
    sample_id: str
    frame_paths: tuple[Path, ...]
    query: str
    frame_names: tuple[str, ...] = ()
    length: Length | None = None
    category: str | None = None
    level: str | None = None
    object_ids: tuple[int, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    masks: MaskSource = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = []
        if not self.frame_paths:
            problems.append("frame_paths is empty; a sample needs an image or at least one video frame")
        if self.frame_names and len(self.frame_names) != len(self.frame_paths):
            problems.append(f"frame_names has {len(self.frame_names)} entries for {len(self.frame_paths)} frames")
        if not isinstance(self.query, str) or not self.query.strip():
            problems.append(f"query must be a non-empty string, got {self.query!r}")
        if self.length is not None and self.length not in LENGTHS:
            problems.append(f"length must be one of {LENGTHS} or None, got {self.length!r}")
        if any(isinstance(i, bool) or not isinstance(i, int) for i in self.object_ids):
            problems.append(f"object_ids must be integers, got {self.object_ids!r}")
        if problems:
            raise ValueError(f"invalid benchmark sample {self.sample_id!r}: " + "; ".join(problems))
        if not self.frame_names:
            object.__setattr__(self, "frame_names", tuple(Path(p).stem for p in self.frame_paths))

    @property
    def num_frames(self) -> int:
        return len(self.frame_paths)

    @property
    def is_video(self) -> bool:
        return len(self.frame_paths) > 1

    @property
    def image_path(self) -> Path:
        """The image of an image sample (the first frame of a video)."""
        return self.frame_paths[0]

    def _check_frame(self, frame: int) -> int:
        if not -self.num_frames <= frame < self.num_frames:
            raise IndexError(f"sample {self.sample_id!r} has {self.num_frames} frame(s); frame {frame} does not exist")
        return frame % self.num_frames

    def gt_mask(self, frame: int = 0) -> np.ndarray:
        """Ground-truth answer mask of ``frame`` as bool (H, W); ignore pixels are False."""
        return self.masks.target(self._check_frame(frame))

    def ignore_mask(self, frame: int = 0) -> np.ndarray | None:
        """Pixels the metric must skip in ``frame`` (bool (H, W)), or None when there are none."""
        return self.masks.ignore(self._check_frame(frame))

    def gt_masks(self) -> Iterator[np.ndarray]:
        """Ground-truth masks of every frame, in order, decoded one at a time."""
        for frame in range(self.num_frames):
            yield self.masks.target(frame)

    def instance_masks(self, frame: int = 0) -> dict[int, np.ndarray]:
        """Every annotated object in ``frame`` by id (bool (H, W)); ``object_ids`` index into it."""
        return self.masks.instances(self._check_frame(frame))


# --------------------------------------------------------------------------- loader base


class Benchmark(ABC):
    """A benchmark split: iterate for :class:`BenchmarkSample` objects, ``len()`` counts them.

    Subclasses index their annotation files on construction (cheap: no mask is decoded) so
    that malformed files fail early with a clear message and ``len()`` is exact.
    """

    name: ClassVar[str]
    default_split: ClassVar[str | None]
    config_class: ClassVar[type]

    def __init__(self, root: str | Path, split: str | None = None, config: Any = None, *,
                 benchmark_name: str | None = None):
        self.root = Path(root)
        self.split = self.default_split if split is None else split
        self.config = self.config_class() if config is None else config
        if not isinstance(self.config, self.config_class):
            raise BenchmarkError(f"{type(self).__name__} needs a {self.config_class.__name__} config, "
                                 f"got {type(self.config).__name__}")
        self.benchmark_name = benchmark_name or self.name
        if not self.root.exists():
            raise BenchmarkError(f"{self.benchmark_name}: root {self.root} does not exist")

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __iter__(self) -> Iterator[BenchmarkSample]: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, samples={len(self)})"


# --------------------------------------------------------------------------- file helpers


def read_json(path: Path, *, encodings: tuple[str, ...] = ("utf-8",)) -> Any:
    """Parse a JSON file; trouble reading or parsing it is a BenchmarkFormatError naming the file."""
    if not path.is_file():
        raise BenchmarkError(f"{path}: file not found")
    last_error: Exception | None = None
    for encoding in encodings:
        try:
            return json.loads(path.read_text(encoding=encoding))
        except UnicodeDecodeError as exc:
            last_error = exc
        except json.JSONDecodeError as exc:
            raise BenchmarkFormatError(path, None, f"not valid JSON ({exc.msg} at line {exc.lineno}, "
                                                   f"column {exc.colno})") from None
        except OSError as exc:
            raise BenchmarkError(f"{path}: cannot read ({exc.strerror or exc})") from None
    raise BenchmarkFormatError(path, None, f"cannot decode text as {' or '.join(encodings)} ({last_error})")


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def get_field(record: Any, key: str, file: Path | str, where: str, expected: type | tuple[type, ...] | None = None,
              *, allow_none: bool = False) -> Any:
    """``record[key]`` (``key`` may be a dotted path) with errors that name the file and field."""
    value = record
    path = where
    for part in key.split("."):
        if not isinstance(value, dict):
            raise BenchmarkFormatError(file, path or "(top level)", f"expected an object, got {type_name(value)}")
        path = f"{path}.{part}" if path else part
        if part not in value:
            shown = ", ".join(sorted(map(str, value))[:12]) or "none"
            raise BenchmarkFormatError(file, path, f"missing (keys present: {shown})")
        value = value[part]
    if value is None and allow_none:
        return None
    if expected is not None:
        types = expected if isinstance(expected, tuple) else (expected,)
        # bool is an int subclass in Python; JSON true is never a valid number here.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            names = " or ".join(t.__name__ for t in types)
            raise BenchmarkFormatError(file, path, f"expected {names}, got {type_name(value)} {_short(value)}")
    return value


def parse_ids(value: Any, file: Path | str, where: str) -> tuple[int, ...]:
    """An id or a list of ids (ints or integer strings, as in MeViS/ReVOS JSON) as a tuple of ints."""
    items = value if isinstance(value, list) else [value]
    ids = []
    for k, item in enumerate(items):
        path = f"{where}[{k}]" if isinstance(value, list) else where
        if isinstance(item, bool):
            raise BenchmarkFormatError(file, path, f"expected an integer id, got {item!r}")
        if isinstance(item, int):
            ids.append(item)
        elif isinstance(item, float) and item.is_integer():
            ids.append(int(item))
        elif isinstance(item, str) and item.strip().lstrip("-").isdigit():
            ids.append(int(item))
        else:
            raise BenchmarkFormatError(file, path, f"expected an integer id, got {type_name(item)} {_short(item)}")
    return tuple(ids)


def check_rle(value: Any, file: Path | str, where: str) -> dict[str, Any]:
    """Validate the shape of a COCO RLE dict without decoding it."""
    if not isinstance(value, dict):
        raise BenchmarkFormatError(file, where, f"expected a COCO RLE object with size and counts, got "
                                                f"{type_name(value)}")
    size = value.get("size")
    if (not isinstance(size, list) or len(size) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in size)):
        raise BenchmarkFormatError(file, f"{where}.size", f"expected [height, width] positive integers, got "
                                                          f"{_short(size)}")
    counts = value.get("counts")
    if not isinstance(counts, (str, bytes, list)):
        raise BenchmarkFormatError(file, f"{where}.counts", f"expected an RLE string or list of run lengths, got "
                                                            f"{type_name(counts)}")
    return value


def decode_rle_checked(rle: dict[str, Any], file: Path | str, where: str) -> np.ndarray:
    """Decode a COCO RLE to bool (H, W); a corrupt RLE is a BenchmarkFormatError, not a crash."""
    from fastreasonseg.twin.masks import decode_mask

    if isinstance(rle.get("counts"), bytes):
        rle = {"size": rle["size"], "counts": rle["counts"].decode("ascii", errors="replace")}
    try:
        mask = decode_mask(rle)
    except Exception as exc:  # pycocotools raises assorted errors on corrupt counts
        raise BenchmarkFormatError(file, where, f"cannot decode RLE ({type(exc).__name__}: {exc})") from None
    height, width = (int(v) for v in rle["size"])
    if mask.shape != (height, width):
        raise BenchmarkFormatError(file, where, f"RLE decodes to {mask.shape}, not its size {[height, width]}")
    return mask


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image as ``cv2.imread`` sees it: EXIF orientation applied, header only.

    LISA reads images with ``cv2.imread``, which rotates by the EXIF orientation tag, and its
    labelme polygons are drawn on the rotated image, so the mask canvas must be rotated too.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except FileNotFoundError:
        raise BenchmarkError(f"{path}: image not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise BenchmarkFormatError(path, None, f"not a readable image ({exc})") from None
    # EXIF orientations 5-8 are transposed (rotated by 90 degrees).
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class FrameCache:
    """Remembers the last few decoded frames of one sample (target and ignore share one decode)."""

    def __init__(self, compute: Callable[[int], Any], size: int = 2):
        self._compute = compute
        self._size = size
        self._items: dict[int, Any] = {}

    def __call__(self, frame: int) -> Any:
        if frame not in self._items:
            if len(self._items) >= self._size:
                self._items.pop(next(iter(self._items)))
            self._items[frame] = self._compute(frame)
        return self._items[frame]
