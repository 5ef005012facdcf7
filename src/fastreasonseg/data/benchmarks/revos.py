"""ReVOS loader (reasoning video object segmentation; VISA, Yan et al. ECCV 2024).

Layout (github.com/cilinyan/ReVOS-api)::

    ReVOS/JPEGImages/<video>/<frame>.jpg
    ReVOS/meta_expressions_{train,train_sub,valid}_.json
        {"videos": {"<video>": {"frames": ["00000", ...],
                                "expressions": {"0": {"exp": "...", "obj_id": [1, 2],
                                                      "anno_id": [4711, 4712], "type_id": 1}}}}}
    ReVOS/mask_dict.json   {"4711": [<RLE or null per frame>, ...], ...}

Conventions follow VISA's ``tools/eval_revos.py``: ``mask_dict[str(anno_id)][i]`` is the
RLE of that object in ``frames[i]`` (frames in the listed order, not re-sorted), null
means absent; an expression's gt is the union over its ``anno_id`` list; ``type_id`` 0 is
a referring expression, 1 a reasoning one and 2 a no-target one (its gt is empty), carried
as ``category`` "referring" / "reasoning" / "no_target". VISA's "overall" score averages the
referring and reasoning groups only. ``object_ids`` are the expression's ``obj_id`` values
and :meth:`BenchmarkSample.instance_masks` returns every object of the video (all
``obj_id``/``anno_id`` pairs named by any of its expressions). The foreground masks
(``mask_dict_foreground.json``) for VISA's robustness score R are not read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fastreasonseg.data.benchmarks.base import (
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
    parse_ids,
    read_json,
    type_name,
)

REVOS_TYPES: dict[int, str] = {0: "referring", 1: "reasoning", 2: "no_target"}
SPLIT_ALIASES: dict[str, str] = {"val": "valid", "validation": "valid"}


@dataclass
class ReVOSConfig:
    """meta_file: expressions JSON (default ``meta_expressions_{split}_.json``, then without the
    trailing underscore). mask_file / image_dir / image_ext: where masks and frames are.
    categories: keep only these types (None: all of referring, reasoning, no_target)."""

    meta_file: str | Path | None = None
    mask_file: str | Path = "mask_dict.json"
    image_dir: str | Path = "JPEGImages"
    image_ext: str = ".jpg"
    categories: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.categories is not None:
            self.categories = tuple(self.categories)
            unknown = [c for c in self.categories if c not in REVOS_TYPES.values()]
            if unknown:
                raise BenchmarkError(f"revos option categories: unknown {unknown}; choose from "
                                     f"{list(REVOS_TYPES.values())}")
        if not self.image_ext.startswith("."):
            raise BenchmarkError(f"revos option image_ext must start with '.', got {self.image_ext!r}")


@dataclass(frozen=True)
class _Video:
    name: str
    frames: tuple[str, ...]
    # obj_id -> anno_id for every object named in the video's expressions.
    objects: dict[int, int]
    # Problems with the obj_id -> anno_id pairing, reported only if instances are asked for.
    conflicts: tuple[str, ...]


@dataclass(frozen=True)
class _Expression:
    video: str
    exp_id: str
    text: str
    obj_ids: tuple[int, ...]
    anno_ids: tuple[int, ...]
    type_id: int


class _ReVOSMasks(MaskSource):
    def __init__(self, benchmark: ReVOSBenchmark, video: _Video, anno_ids: tuple[int, ...], frame_paths: tuple[Path, ...]):
        self.benchmark = benchmark
        self.video = video
        self.anno_ids = anno_ids
        self.frame_paths = frame_paths
        self._target = FrameCache(self._union)

    def _decode(self, anno_id: int, frame: int) -> np.ndarray | None:
        rle = self.benchmark.mask_dict[str(anno_id)][frame]
        if rle is None:
            return None
        where = f"[{str(anno_id)!r}][{frame}]"
        return decode_rle_checked(check_rle(rle, self.benchmark.mask_path, where), self.benchmark.mask_path, where)

    def _union(self, frame: int) -> np.ndarray:
        union: np.ndarray | None = None
        for anno_id in self.anno_ids:
            mask = self._decode(anno_id, frame)
            if mask is None:
                continue
            if union is None:
                union = mask.copy()
            elif mask.shape != union.shape:
                raise BenchmarkFormatError(self.benchmark.mask_path, f"[{str(anno_id)!r}][{frame}]",
                                           f"mask size {mask.shape} differs from the other objects' {union.shape} "
                                           f"in video {self.video.name!r}")
            else:
                union |= mask
        if union is None:  # no target in this frame (or a no-target expression): empty at image size
            union = np.zeros(image_size(self.frame_paths[frame]), dtype=bool)
        return union

    def target(self, frame: int) -> np.ndarray:
        return self._target(frame)

    def instances(self, frame: int) -> dict[int, np.ndarray]:
        if self.video.conflicts:
            raise BenchmarkFormatError(self.benchmark.meta_path, f"videos[{self.video.name!r}]",
                                       "; ".join(self.video.conflicts))
        found = {}
        for obj_id, anno_id in sorted(self.video.objects.items()):
            mask = self._decode(anno_id, frame)
            if mask is not None:
                found[obj_id] = mask
        return found


class ReVOSBenchmark(Benchmark):
    """ReVOS: one sample per expression, all frames of its video."""

    name: ClassVar[str] = "revos"
    default_split: ClassVar[str | None] = "valid"
    config_class: ClassVar[type] = ReVOSConfig
    config: ReVOSConfig

    def __init__(self, root: str | Path, split: str | None = None, config: ReVOSConfig | None = None, **kwargs: Any):
        super().__init__(root, split, config, **kwargs)
        self.split = SPLIT_ALIASES.get(str(self.split), self.split)
        self.meta_path = self._find_meta()
        self.mask_path = self._resolve(self.config.mask_file)
        self.image_root = self._resolve(self.config.image_dir)
        if not self.image_root.is_dir():
            raise BenchmarkError(f"{self.benchmark_name}: frame folder {self.image_root} not found")
        meta = read_json(self.meta_path)
        self.mask_dict: dict[str, Any] = read_json(self.mask_path)
        if not isinstance(self.mask_dict, dict):
            raise BenchmarkFormatError(self.mask_path, None, f"expected an object keyed by anno_id, got "
                                                             f"{type_name(self.mask_dict)}")
        videos = get_field(meta, "videos", self.meta_path, "", dict)
        self.videos: dict[str, _Video] = {}
        self.expressions: list[_Expression] = []
        for video_name, entry in videos.items():
            self._index_video(video_name, entry)
        self._checked_videos: set[str] = set()

    def _resolve(self, value: str | Path) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.root / path

    def _find_meta(self) -> Path:
        if self.config.meta_file is not None:
            return self._resolve(self.config.meta_file)
        tried = [self.root / f"meta_expressions_{self.split}_.json", self.root / f"meta_expressions_{self.split}.json"]
        for path in tried:
            if path.is_file():
                return path
        raise BenchmarkError(f"{self.benchmark_name}: no expressions file for split {self.split!r} (tried "
                             f"{', '.join(str(p) for p in tried)}); pass meta_file=...")

    def _index_video(self, video_name: str, entry: Any) -> None:
        file, where = self.meta_path, f"videos[{video_name!r}]"
        frames = get_field(entry, "frames", file, where, list)
        if not frames:
            raise BenchmarkFormatError(file, f"{where}.frames", "empty frame list")
        for k, frame in enumerate(frames):
            if not isinstance(frame, str) or not frame:
                raise BenchmarkFormatError(file, f"{where}.frames[{k}]", f"expected a frame name, got {frame!r}")
        expressions = get_field(entry, "expressions", file, where, dict)
        objects: dict[int, int] = {}
        conflicts: list[str] = []
        for exp_id, exp in expressions.items():
            exp_where = f"{where}.expressions[{exp_id!r}]"
            text = get_field(exp, "exp", file, exp_where, str)
            if not text.strip():
                raise BenchmarkFormatError(file, f"{exp_where}.exp", "empty expression")
            type_id = get_field(exp, "type_id", file, exp_where, int)
            if type_id not in REVOS_TYPES:
                raise BenchmarkFormatError(file, f"{exp_where}.type_id", f"unknown type {type_id}; expected 0 "
                                                                          f"(referring), 1 (reasoning) or 2 (no target)")
            anno_ids = parse_ids(get_field(exp, "anno_id", file, exp_where), file, f"{exp_where}.anno_id")
            obj_ids = parse_ids(get_field(exp, "obj_id", file, exp_where), file, f"{exp_where}.obj_id")
            if anno_ids and len(obj_ids) != len(anno_ids):
                raise BenchmarkFormatError(file, f"{exp_where}.obj_id", f"{len(obj_ids)} obj_id values for "
                                                                         f"{len(anno_ids)} anno_id values; they pair up")
            for anno_id in anno_ids:
                self._check_mask_entry(anno_id, len(frames), video_name)
            for obj_id, anno_id in zip(obj_ids, anno_ids, strict=False):
                if objects.setdefault(obj_id, anno_id) != anno_id:
                    conflicts.append(f"obj_id {obj_id} has anno_id {objects[obj_id]} and {anno_id} in different "
                                     f"expressions")
            if self.config.categories is not None and REVOS_TYPES[type_id] not in self.config.categories:
                continue
            self.expressions.append(_Expression(video_name, str(exp_id), text.strip(),
                                                obj_ids if anno_ids else (), anno_ids, type_id))
        self.videos[video_name] = _Video(video_name, tuple(frames), objects, tuple(conflicts))

    def _check_mask_entry(self, anno_id: int, num_frames: int, video_name: str) -> None:
        key = str(anno_id)
        if key not in self.mask_dict:
            raise BenchmarkFormatError(self.mask_path, f"[{key!r}]", f"anno_id {anno_id} of video {video_name!r} "
                                                                     f"has no masks")
        per_frame = self.mask_dict[key]
        if not isinstance(per_frame, list) or len(per_frame) != num_frames:
            got = f"{len(per_frame)} entries" if isinstance(per_frame, list) else type_name(per_frame)
            raise BenchmarkFormatError(self.mask_path, f"[{key!r}]", f"expected a list of {num_frames} per-frame RLEs "
                                                                     f"or nulls (one per frame of video "
                                                                     f"{video_name!r}), got {got}")

    def _frame_paths(self, video: _Video) -> tuple[Path, ...]:
        folder = self.image_root / video.name
        paths = tuple(folder / f"{frame}{self.config.image_ext}" for frame in video.frames)
        if video.name not in self._checked_videos:
            missing = [p for p in paths if not p.is_file()]
            if missing:
                raise BenchmarkError(f"{self.meta_path}: video {video.name!r} lists {len(missing)} frame(s) not found "
                                     f"on disk, e.g. {missing[0]}")
            self._checked_videos.add(video.name)
        return paths

    def __len__(self) -> int:
        return len(self.expressions)

    def __iter__(self) -> Iterator[BenchmarkSample]:
        for exp in self.expressions:
            video = self.videos[exp.video]
            frame_paths = self._frame_paths(video)
            yield BenchmarkSample(
                benchmark=self.benchmark_name,
                sample_id=f"{exp.video}/{exp.exp_id}",
                frame_paths=frame_paths,
                frame_names=video.frames,
                query=exp.text,
                category=REVOS_TYPES[exp.type_id],
                object_ids=exp.obj_ids,
                metadata={"video": exp.video, "exp_id": exp.exp_id, "type_id": exp.type_id,
                          "anno_ids": list(exp.anno_ids)},
                masks=_ReVOSMasks(self, video, exp.anno_ids, frame_paths),
            )
