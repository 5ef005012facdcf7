"""LLM-Seg40K loader on a hand-made split JSON in the reference layout (RLEs via pycocotools)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from fastreasonseg.data.benchmarks import BenchmarkError, BenchmarkFormatError, load_benchmark

H, W = 8, 10


def rle(mask: np.ndarray, *, compressed: bool = True) -> dict:
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    if compressed:
        return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}
    # Uncompressed COCO RLE: run lengths in column-major order, starting with zeros.
    flat = mask.astype(np.uint8).flatten(order="F")
    runs, current, count = [], 0, 0
    for value in flat:
        if value == current:
            count += 1
        else:
            runs.append(count)
            current, count = value, 1
    runs.append(count)
    return {"size": list(mask.shape), "counts": runs}


def box(x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[y1:y2, x1:x2] = True
    return mask


MASKS = {"coco_a": box(1, 1, 4, 3), "coco_b": box(5, 2, 9, 7), "ego": box(0, 0, 2, 8)}


def write_dataset(root: Path, annotation: dict | None = None, file_name: str = "validation.json") -> Path:
    for folder, name in (("coco/train2017", "000000000001.jpg"), ("ego_objects/images", "ego_1.jpg")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (W, H)).save(root / folder / name)
    if annotation is None:
        annotation = {
            "000000000001.jpg": {"from_dataset": "coco", "qa_pairs": [
                {"question": "What keeps the food warm?", "answer": "The oven.", "rle_seg": rle(MASKS["coco_a"])},
                {"question": "Where would a cat sleep?", "answer": "The basket.",
                 "rle_seg": rle(MASKS["coco_b"], compressed=False)},
            ]},
            "ego_1.jpg": {"from_dataset": "ego_objects", "qa_pairs": [
                {"question": "What could I write with?", "answer": "The pen.", "rle_seg": rle(MASKS["ego"])},
            ]},
        }
    path = root / file_name
    path.write_text(json.dumps(annotation))
    return path


def test_every_question_is_a_sample_with_its_mask(tmp_path: Path) -> None:
    write_dataset(tmp_path)
    bench = load_benchmark("llmseg40k", tmp_path)
    assert len(bench) == 3
    samples = list(bench)
    assert [s.sample_id for s in samples] == ["000000000001.jpg#0", "000000000001.jpg#1", "ego_1.jpg#0"]
    assert samples[0].image_path == tmp_path / "coco/train2017/000000000001.jpg"
    assert samples[2].image_path == tmp_path / "ego_objects/images/ego_1.jpg"
    for sample, key in zip(samples, ["coco_a", "coco_b", "ego"], strict=True):
        np.testing.assert_array_equal(sample.gt_mask(), MASKS[key])
        assert sample.length == "long" and sample.ignore_mask() is None and sample.object_ids == (1,)
        np.testing.assert_array_equal(sample.instance_masks()[1], MASKS[key])
    assert samples[1].metadata["answer"] == "The basket."
    assert samples[2].metadata["from_dataset"] == "ego_objects"


def test_split_file_and_image_dirs_are_configurable(tmp_path: Path) -> None:
    (tmp_path / "split").mkdir()
    write_dataset(tmp_path, file_name="split/test.json")  # the split folder is searched too
    assert len(load_benchmark("llmseg40k", tmp_path, split="test")) == 3
    moved = tmp_path / "elsewhere"
    (tmp_path / "coco").rename(moved)
    bench = load_benchmark("llmseg40k", tmp_path, annotation_file="split/test.json",
                           image_dirs={"coco": moved / "train2017", "ego_objects": "ego_objects/images"})
    assert next(iter(bench)).image_path == moved / "train2017" / "000000000001.jpg"


@pytest.mark.parametrize(
    ("entry", "field", "problem"),
    [
        ({"qa_pairs": []}, "['x.jpg'].from_dataset", "missing"),
        ({"from_dataset": "lvis", "qa_pairs": []}, "['x.jpg'].from_dataset", "unknown source 'lvis'"),
        ({"from_dataset": "coco", "qa_pairs": {}}, "['x.jpg'].qa_pairs", "expected list"),
        ({"from_dataset": "coco", "qa_pairs": [{"question": 5, "answer": "a", "rle_seg": rle(box(0, 0, 1, 1))}]},
         "['x.jpg'].qa_pairs[0].question", "expected str"),
        ({"from_dataset": "coco", "qa_pairs": [{"question": "q", "answer": "a"}]},
         "['x.jpg'].qa_pairs[0].rle_seg", "missing"),
        ({"from_dataset": "coco", "qa_pairs": [{"question": "q", "answer": "a", "rle_seg": {"size": [8], "counts": ""}}]},
         "['x.jpg'].qa_pairs[0].rle_seg.size", r"\[height, width\]"),
        ({"from_dataset": "coco", "qa_pairs": [{"question": "q", "answer": "a", "rle_seg": {"size": [8, 10]}}]},
         "['x.jpg'].qa_pairs[0].rle_seg.counts", "RLE string"),
    ],
)
def test_malformed_entries_name_file_and_field(tmp_path: Path, entry: dict, field: str, problem: str) -> None:
    write_dataset(tmp_path, {"x.jpg": entry})
    with pytest.raises(BenchmarkFormatError, match=problem) as info:
        load_benchmark("llmseg40k", tmp_path)
    assert info.value.field == field
    assert info.value.file.endswith("validation.json")


def test_corrupt_rle_and_missing_files(tmp_path: Path) -> None:
    bad = {"size": [H, W], "counts": "zz"}
    write_dataset(tmp_path, {"000000000001.jpg": {"from_dataset": "coco", "qa_pairs": [
        {"question": "q", "answer": None, "rle_seg": bad}]}})
    sample = next(iter(load_benchmark("llmseg40k", tmp_path)))
    with pytest.raises(BenchmarkFormatError, match=r"qa_pairs\[0\]\.rle_seg"):
        sample.gt_mask()

    write_dataset(tmp_path, {"missing.jpg": {"from_dataset": "coco", "qa_pairs": [
        {"question": "q", "answer": "a", "rle_seg": rle(box(0, 0, 1, 1))}]}})
    with pytest.raises(BenchmarkError, match=r"image 'missing.jpg' \(coco\) not found"):
        list(load_benchmark("llmseg40k", tmp_path))

    with pytest.raises(BenchmarkError, match=r"no annotation file for split 'train' \(tried .*train\.json"):
        load_benchmark("llmseg40k", tmp_path, split="train")
