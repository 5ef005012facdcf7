"""ReVOS loader on a hand-made fixture in the ReVOS-api layout (meta_expressions + mask_dict)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from fastreasonseg.data.benchmarks import BenchmarkError, BenchmarkFormatError, load_benchmark

H, W = 6, 8


def box(x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[y1:y2, x1:x2] = True
    return mask


def rle(mask: np.ndarray) -> dict:
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


# Frames are listed out of lexical order on purpose: mask_dict indices follow the list.
FRAMES = ["00010", "00000", "00005"]
CAT = [box(0, 0, 3, 3), None, box(1, 1, 4, 4)]          # obj 1 (anno 100): absent in frame 1
DOG = [box(4, 2, 8, 6), box(5, 0, 8, 2), None]          # obj 2 (anno 101): absent in frame 2


def write_revos(root: Path, meta: dict | None = None, masks: dict | None = None) -> None:
    for video in ("v1", "v2"):
        (root / "JPEGImages" / video).mkdir(parents=True, exist_ok=True)
        for frame in FRAMES:
            Image.new("RGB", (W, H)).save(root / "JPEGImages" / video / f"{frame}.jpg")
    if meta is None:
        meta = {"videos": {
            "v1": {"frames": FRAMES, "expressions": {
                "0": {"exp": "the cat", "obj_id": [1], "anno_id": [100], "type_id": 0},
                "1": {"exp": "the animals that could be pets", "obj_id": [1, 2], "anno_id": ["100", "101"],
                      "type_id": 1},
                "2": {"exp": "the elephant in the room", "obj_id": [], "anno_id": [], "type_id": 2},
            }},
            "v2": {"frames": FRAMES, "expressions": {
                "0": {"exp": "the dog", "obj_id": [7], "anno_id": [101], "type_id": 0},
            }},
        }}
    if masks is None:
        masks = {"100": [None if m is None else rle(m) for m in CAT],
                 "101": [None if m is None else rle(m) for m in DOG]}
    (root / "meta_expressions_valid_.json").write_text(json.dumps(meta))
    (root / "mask_dict.json").write_text(json.dumps(masks))


def by_id(bench) -> dict:
    return {s.sample_id: s for s in bench}


def test_expressions_types_and_frames(tmp_path: Path) -> None:
    write_revos(tmp_path)
    bench = load_benchmark("revos", tmp_path)
    assert len(bench) == 4
    samples = by_id(bench)
    assert list(samples) == ["v1/0", "v1/1", "v1/2", "v2/0"]
    assert [samples[k].category for k in samples] == ["referring", "reasoning", "no_target", "referring"]
    cat = samples["v1/0"]
    assert cat.is_video and cat.num_frames == 3
    assert cat.frame_names == tuple(FRAMES)
    assert cat.frame_paths == tuple(tmp_path / "JPEGImages" / "v1" / f"{f}.jpg" for f in FRAMES)
    assert cat.object_ids == (1,) and cat.metadata["type_id"] == 0


def test_multi_object_union_and_null_frames(tmp_path: Path) -> None:
    write_revos(tmp_path)
    samples = by_id(load_benchmark("revos", tmp_path))
    cat, pets, nothing = samples["v1/0"], samples["v1/1"], samples["v1/2"]
    np.testing.assert_array_equal(cat.gt_mask(0), CAT[0])
    np.testing.assert_array_equal(cat.gt_mask(1), np.zeros((H, W), bool))  # null: object absent, empty at image size
    assert pets.object_ids == (1, 2)
    expected = [CAT[0] | DOG[0], DOG[1], CAT[2]]
    for frame, (got, want) in enumerate(zip(pets.gt_masks(), expected, strict=True)):
        np.testing.assert_array_equal(got, want, err_msg=f"frame {frame}")
    assert nothing.object_ids == ()
    assert all(not m.any() and m.shape == (H, W) for m in nothing.gt_masks())


def test_instances_cover_every_object_of_the_video(tmp_path: Path) -> None:
    write_revos(tmp_path)
    cat = by_id(load_benchmark("revos", tmp_path))["v1/0"]
    frame0 = cat.instance_masks(0)
    assert sorted(frame0) == [1, 2]
    np.testing.assert_array_equal(frame0[2], DOG[0])
    assert sorted(cat.instance_masks(1)) == [2]  # the cat is absent from frame 1
    assert sorted(cat.instance_masks(-1)) == [1]


def test_categories_filter_and_split_alias(tmp_path: Path) -> None:
    write_revos(tmp_path)
    bench = load_benchmark("revos", tmp_path, split="val", categories=("reasoning",))
    assert [s.sample_id for s in bench] == ["v1/1"]
    with pytest.raises(BenchmarkError, match="unknown"):
        load_benchmark("revos", tmp_path, categories=("sarcastic",))


def _meta(expression: dict, frames: list | None = None) -> dict:
    return {"videos": {"v1": {"frames": FRAMES if frames is None else frames, "expressions": {"0": expression}}}}


GOOD_EXP = {"exp": "x", "obj_id": [1], "anno_id": [100], "type_id": 0}
GOOD_MASKS = {"100": [None, None, None]}


@pytest.mark.parametrize(
    ("meta", "masks", "file", "field", "problem"),
    [
        ({"video": {}}, GOOD_MASKS, "meta", "videos", "missing"),
        (_meta(GOOD_EXP, frames=[]), GOOD_MASKS, "meta", "videos['v1'].frames", "empty frame list"),
        (_meta({**GOOD_EXP, "type_id": 5}), GOOD_MASKS, "meta", "videos['v1'].expressions['0'].type_id", "unknown type 5"),
        (_meta({**GOOD_EXP, "exp": ""}), GOOD_MASKS, "meta", "videos['v1'].expressions['0'].exp", "empty expression"),
        (_meta({**GOOD_EXP, "anno_id": ["a"]}), GOOD_MASKS, "meta", "videos['v1'].expressions['0'].anno_id[0]",
         "integer id"),
        (_meta({**GOOD_EXP, "obj_id": [1, 2]}), GOOD_MASKS, "meta", "videos['v1'].expressions['0'].obj_id", "pair up"),
        (_meta({**GOOD_EXP, "anno_id": [999]}), GOOD_MASKS, "mask", "['999']", "has no masks"),
        (_meta(GOOD_EXP), {"100": [None, None]}, "mask", "['100']", "list of 3 per-frame RLEs"),
        (_meta(GOOD_EXP), [], "mask", None, "keyed by anno_id"),
    ],
)
def test_malformed_files_name_file_and_field(tmp_path: Path, meta, masks, file, field, problem) -> None:
    write_revos(tmp_path, meta, masks)
    with pytest.raises(BenchmarkFormatError, match=problem) as info:
        load_benchmark("revos", tmp_path)
    assert info.value.field == field
    assert info.value.file.endswith("meta_expressions_valid_.json" if file == "meta" else "mask_dict.json")


def test_bad_rle_missing_frames_and_files(tmp_path: Path) -> None:
    write_revos(tmp_path, _meta(GOOD_EXP), {"100": [{"size": [H, W], "counts": "zz"}, None, None]})
    sample = next(iter(load_benchmark("revos", tmp_path)))
    with pytest.raises(BenchmarkFormatError, match=r"mask_dict\.json: field \['100'\]\[0\]: cannot decode RLE"):
        sample.gt_mask(0)

    write_revos(tmp_path)
    (tmp_path / "JPEGImages" / "v2" / "00005.jpg").unlink()
    samples = iter(load_benchmark("revos", tmp_path))
    assert [next(samples).sample_id for _ in range(3)] == ["v1/0", "v1/1", "v1/2"]
    with pytest.raises(BenchmarkError, match=r"video 'v2' lists 1 frame\(s\) not found.*00005\.jpg"):
        next(samples)

    with pytest.raises(BenchmarkError, match=r"no expressions file for split 'train'"):
        load_benchmark("revos", tmp_path, split="train")


def test_conflicting_object_pairing_fails_only_for_instances(tmp_path: Path) -> None:
    meta = {"videos": {"v1": {"frames": FRAMES, "expressions": {
        "0": {"exp": "a", "obj_id": [1], "anno_id": [100], "type_id": 0},
        "1": {"exp": "b", "obj_id": [1], "anno_id": [101], "type_id": 0},
    }}}}
    write_revos(tmp_path, meta)
    sample = next(iter(load_benchmark("revos", tmp_path)))
    np.testing.assert_array_equal(sample.gt_mask(0), CAT[0])  # the gt itself is unambiguous
    with pytest.raises(BenchmarkFormatError, match="obj_id 1 has anno_id 100 and 101"):
        sample.instance_masks(0)
