"""DAVIS-style query benchmarks (JiTBench / RVTBench layout) on hand-made palette PNG fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastreasonseg.data.benchmarks import BenchmarkError, BenchmarkFormatError, DavisQueryConfig, load_benchmark

H, W = 6, 8


def id_map(frame: int) -> np.ndarray:
    """Object 1 moves right by one pixel per frame; object 2 and 3 sit still; 255 is void."""
    ids = np.zeros((H, W), dtype=np.uint8)
    ids[0:2, frame : frame + 2] = 1
    ids[3:5, 0:2] = 2
    ids[3:6, 5:7] = 3
    ids[5, 0] = 255
    return ids


def save_palette_png(ids: np.ndarray, path: Path) -> None:
    image = Image.fromarray(ids, mode="P")
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0, 0, 0] * 251 + [255, 255, 255]
    image.putpalette(palette)
    image.save(path)


def write_videos(root: Path, frames: int = 3, annotated: tuple[int, ...] | None = None) -> None:
    annotated = tuple(range(frames)) if annotated is None else annotated
    for video in ("bear", "car"):
        (root / "JPEGImages" / video).mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / video).mkdir(parents=True, exist_ok=True)
        for f in range(frames):
            Image.new("RGB", (W, H)).save(root / "JPEGImages" / video / f"{f:05d}.jpg")
            if f in annotated:
                save_palette_png(id_map(f), root / "Annotations" / video / f"{f:05d}.png")


QUERIES = [
    {"id": "q1", "video": "bear", "query": "the thing that moves", "object_ids": [1], "category": "temporal",
     "level": 1},
    {"id": "q2", "video": "bear", "query": "the two still things", "object_ids": [2, 3], "category": "spatial",
     "level": "L2"},
    {"id": "q3", "video": "car", "query": "nothing here", "object_ids": [], "category": "semantic", "level": None},
]


def write_queries(root: Path, data, name: str = "queries.json") -> None:
    (root / name).write_text(json.dumps(data))


def test_default_mapping_selects_ids_and_carries_category_and_level(tmp_path: Path) -> None:
    write_videos(tmp_path)
    write_queries(tmp_path, QUERIES)
    bench = load_benchmark("jitbench", tmp_path)
    samples = list(bench)
    assert len(bench) == 3 and samples[0].benchmark == "jitbench"
    assert [(s.sample_id, s.category, s.level) for s in samples] == [
        ("q1", "temporal", "1"), ("q2", "spatial", "L2"), ("q3", "semantic", None)]
    moving, still, nothing = samples
    assert moving.frame_names == ("00000", "00001", "00002")
    assert moving.frame_paths[2] == tmp_path / "JPEGImages" / "bear" / "00002.jpg"
    for f in range(3):
        np.testing.assert_array_equal(moving.gt_mask(f), id_map(f) == 1)
        np.testing.assert_array_equal(still.gt_mask(f), (id_map(f) == 2) | (id_map(f) == 3))
        np.testing.assert_array_equal(moving.ignore_mask(f), id_map(f) == 255)
        assert not nothing.gt_mask(f).any() and nothing.gt_mask(f).shape == (H, W)
    instances = moving.instance_masks(1)
    assert sorted(instances) == [1, 2, 3]  # 255 is void, not an object
    np.testing.assert_array_equal(instances[3], id_map(1) == 3)


def test_custom_field_mapping_with_nested_records(tmp_path: Path) -> None:
    write_videos(tmp_path)
    data = {"meta": {"version": 1}, "data": {"queries": [
        {"seq": "bear", "sentence": "What could hide behind the rock?", "targets": "2",
         "info": {"kind": "spatial", "difficulty": 3}, "long": True},
        {"seq": "car", "sentence": "the car", "targets": 3, "info": {"kind": "semantic", "difficulty": 1},
         "long": False},
    ]}}
    write_queries(tmp_path, data, name="rvt_test.json")
    config = dict(query_file="rvt_{split}.json", records_key="data.queries", id_field=None, query_field="sentence",
                  video_field="seq", object_ids_field="targets", category_field="info.kind",
                  level_field="info.difficulty", is_sentence_field="long")
    samples = list(load_benchmark("rvtbench", tmp_path, split="test", **config))
    assert [(s.sample_id, s.query, s.object_ids, s.category, s.level, s.length) for s in samples] == [
        ("bear#0", "What could hide behind the rock?", (2,), "spatial", "3", "long"),
        ("car#1", "the car", (3,), "semantic", "1", "short"),
    ]
    np.testing.assert_array_equal(samples[1].gt_mask(0), id_map(0) == 3)
    assert DavisQueryConfig(**config).records_key == "data.queries"


def test_records_keyed_by_id_and_ignore_off(tmp_path: Path) -> None:
    write_videos(tmp_path)
    write_queries(tmp_path, {"a": {"video": "bear", "query": "q", "object_ids": 1}},)
    sample = next(iter(load_benchmark("davis", tmp_path, category_field=None, level_field=None, ignore_value=None)))
    assert sample.sample_id == "a" and sample.category is None
    assert sample.ignore_mask() is None
    assert sorted(sample.instance_masks(0)) == [1, 2, 3, 255]  # without a void value 255 is an object id


def test_sparse_annotations(tmp_path: Path) -> None:
    write_videos(tmp_path, frames=4, annotated=(0, 2))
    write_queries(tmp_path, QUERIES[:1])
    sample = next(iter(load_benchmark("davis", tmp_path)))
    assert sample.frame_names == ("00000", "00002")  # only annotated frames: media and gt aligned
    np.testing.assert_array_equal(sample.gt_mask(1), id_map(2) == 1)
    with pytest.raises(BenchmarkError, match=r"no mask PNG for 2 frame\(s\), e\.g\. 00001\.png"):
        list(load_benchmark("davis", tmp_path, frames="all"))


def test_rgb_annotation_is_rejected_when_decoded(tmp_path: Path) -> None:
    write_videos(tmp_path, frames=1)
    Image.new("RGB", (W, H)).save(tmp_path / "Annotations" / "bear" / "00000.png")
    write_queries(tmp_path, QUERIES[:1])
    sample = next(iter(load_benchmark("davis", tmp_path)))
    with pytest.raises(BenchmarkFormatError, match=r"00000\.png: expected an indexed-palette .* got mode RGB"):
        sample.gt_mask(0)


@pytest.mark.parametrize(
    ("records", "field", "problem"),
    [
        ({"queries": []}, None, "expected a list of query records"),
        ([{"query": "q", "object_ids": [1], "id": "a", "category": None, "level": None}], "[0].video", "missing"),
        ([{"video": "bear", "query": "", "object_ids": [1], "id": "a", "category": None, "level": None}],
         "[0].query", "empty query"),
        ([{"video": "bear", "query": "q", "object_ids": [0], "id": "a", "category": None, "level": None}],
         "[0].object_ids", "positive palette indices"),
        ([{"video": "bear", "query": "q", "object_ids": [1.5], "id": "a", "category": None, "level": None}],
         "[0].object_ids[0]", "integer id"),
        ([{"video": "bear", "query": "q", "object_ids": [1], "id": "a", "level": None}], "[0].category", "missing"),
        ([{"video": "bear", "query": "q", "object_ids": [1], "id": "a", "category": ["x"], "level": None}],
         "[0].category", "expected str or int or float"),
    ],
)
def test_malformed_query_file_names_field(tmp_path: Path, records, field, problem) -> None:
    write_videos(tmp_path, frames=1)
    write_queries(tmp_path, records)
    with pytest.raises(BenchmarkFormatError, match=problem) as info:
        load_benchmark("davis", tmp_path)
    assert info.value.field == field and info.value.file.endswith("queries.json")


def test_missing_folders_and_files(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match=r"folder .*JPEGImages not found"):
        load_benchmark("davis", tmp_path)
    write_videos(tmp_path, frames=1)
    with pytest.raises(BenchmarkError, match=r"queries\.json: file not found"):
        load_benchmark("davis", tmp_path)
    write_queries(tmp_path, [{**QUERIES[0], "video": "zebra"}])
    with pytest.raises(BenchmarkError, match="video 'zebra' has no frame folder"):
        list(load_benchmark("davis", tmp_path))
    with pytest.raises(BenchmarkError, match="needs a split"):
        load_benchmark("davis", tmp_path, query_file="q_{split}.json")
    with pytest.raises(BenchmarkError, match="ignore_value must be a palette index"):
        load_benchmark("davis", tmp_path, ignore_value=0)
