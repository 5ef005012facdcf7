"""LLM-Seg40K loader (Wang & Ke, "LLM-Seg", CVPRW 2024; github.com/wangjunchi/LLMSeg).

Layout, as read by the reference ``utils/llm_seg_dataset.py``: one JSON per split (the
reference evaluates ``validation.json``) keyed by image file name::

    {"000000391895.jpg": {"from_dataset": "coco",
                          "qa_pairs": [{"question": "...", "answer": "...",
                                        "rle_seg": {"size": [h, w], "counts": "..."}}]}}

Images live in a folder per source dataset: COCO 2017 train images for ``coco`` and
EgoObjects images for ``ego_objects`` (configurable in :class:`LlmSegConfig`). Every
question becomes one sample; the reference treats all of them as sentences
(``is_sentence = True``), so ``length`` is "long". The ``answer`` text (the teacher's
explanation in the dataset) is kept in ``metadata["answer"]``. The mask is one merged
target (``object_ids == (1,)``); there are no ignore pixels.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
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
    read_json,
    type_name,
)

# Split name -> candidate annotation file names, searched in root and root/split.
SPLIT_FILES: dict[str, tuple[str, ...]] = {
    "train": ("train.json",),
    "val": ("validation.json", "val.json"),
    "validation": ("validation.json", "val.json"),
    "test": ("test.json",),
}


def _default_image_dirs() -> dict[str, str]:
    return {"coco": "coco/train2017", "ego_objects": "ego_objects/images"}


@dataclass
class LlmSegConfig:
    """annotation_file: the split JSON (relative to the root, or absolute; default from the
    split name). image_dirs: ``from_dataset`` value -> image folder (relative to the root,
    or absolute)."""

    annotation_file: str | Path | None = None
    image_dirs: dict[str, str | Path] = field(default_factory=_default_image_dirs)

    def __post_init__(self) -> None:
        if not isinstance(self.image_dirs, dict) or not self.image_dirs:
            raise BenchmarkError(f"llmseg40k option image_dirs must map from_dataset names to folders, got "
                                 f"{self.image_dirs!r}")


@dataclass(frozen=True)
class _QaRecord:
    image_key: str
    from_dataset: str
    index: int
    question: str
    answer: str | None
    rle: dict[str, Any]


class _RleMasks(MaskSource):
    def __init__(self, rle: dict[str, Any], file: Path, where: str):
        self.rle = rle
        self.file = file
        self.where = where
        self._decoded = FrameCache(lambda frame: decode_rle_checked(self.rle, self.file, self.where), size=1)

    def target(self, frame: int) -> np.ndarray:
        return self._decoded(frame)

    def instances(self, frame: int) -> dict[int, np.ndarray]:
        return {1: self._decoded(frame)}


class LlmSeg40kBenchmark(Benchmark):
    """LLM-Seg40K: one sample per (image, question) pair."""

    name: ClassVar[str] = "llmseg40k"
    default_split: ClassVar[str | None] = "val"
    config_class: ClassVar[type] = LlmSegConfig
    config: LlmSegConfig

    def __init__(self, root: str | Path, split: str | None = None, config: LlmSegConfig | None = None, **kwargs: Any):
        super().__init__(root, split, config, **kwargs)
        self.annotation_file = self._find_annotation()
        data = read_json(self.annotation_file)
        file = self.annotation_file
        if not isinstance(data, dict):
            raise BenchmarkFormatError(file, None, f"expected an object keyed by image file name, got "
                                                   f"{type_name(data)}")
        self.records: list[_QaRecord] = []
        for image_key, entry in data.items():
            where = f"[{image_key!r}]"
            from_dataset = get_field(entry, "from_dataset", file, where, str)
            if from_dataset not in self.config.image_dirs:
                raise BenchmarkFormatError(file, f"{where}.from_dataset", f"unknown source {from_dataset!r}; add it "
                                                                          f"to LlmSegConfig.image_dirs (known: "
                                                                          f"{', '.join(sorted(self.config.image_dirs))})")
            pairs = get_field(entry, "qa_pairs", file, where, list)
            for k, pair in enumerate(pairs):
                pair_where = f"{where}.qa_pairs[{k}]"
                question = get_field(pair, "question", file, pair_where, str)
                if not question.strip():
                    raise BenchmarkFormatError(file, f"{pair_where}.question", "empty question")
                answer = get_field(pair, "answer", file, pair_where, str, allow_none=True)
                rle = check_rle(get_field(pair, "rle_seg", file, pair_where), file, f"{pair_where}.rle_seg")
                self.records.append(_QaRecord(image_key, from_dataset, k, question.strip(), answer, rle))

    def _find_annotation(self) -> Path:
        if self.config.annotation_file is not None:
            path = Path(self.config.annotation_file)
            path = path if path.is_absolute() else self.root / path
            if not path.is_file():
                raise BenchmarkError(f"{self.benchmark_name}: annotation file {path} not found")
            return path
        names = SPLIT_FILES.get(str(self.split), (f"{self.split}.json",))
        tried = [base / name for name in names for base in (self.root, self.root / "split")]
        for path in tried:
            if path.is_file():
                return path
        raise BenchmarkError(f"{self.benchmark_name}: no annotation file for split {self.split!r} (tried "
                             f"{', '.join(str(p) for p in tried)}); pass annotation_file=...")

    def _image_dir(self, from_dataset: str) -> Path:
        folder = Path(self.config.image_dirs[from_dataset])
        return folder if folder.is_absolute() else self.root / folder

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[BenchmarkSample]:
        for record in self.records:
            image_path = self._image_dir(record.from_dataset) / record.image_key
            if not image_path.is_file():
                raise BenchmarkError(f"{self.annotation_file}: image {record.image_key!r} ({record.from_dataset}) "
                                     f"not found at {image_path}; set LlmSegConfig.image_dirs")
            where = f"[{record.image_key!r}].qa_pairs[{record.index}].rle_seg"
            yield BenchmarkSample(
                benchmark=self.benchmark_name,
                sample_id=f"{record.image_key}#{record.index}",
                frame_paths=(image_path,),
                query=record.question,
                length="long",
                object_ids=(1,),
                metadata={"answer": record.answer, "from_dataset": record.from_dataset,
                          "image_key": record.image_key, "qa_index": record.index},
                masks=_RleMasks(record.rle, self.annotation_file, where),
            )
