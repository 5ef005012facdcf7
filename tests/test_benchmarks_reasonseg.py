"""ReasonSeg loaders on hand-made fixtures in LISA's exact folder layout and the parquet export.

Expected masks are written out by hand from the polygon coordinates (LISA draws the outline
with thickness 1 and fills, so a rectangle [[x1, y1], [x2, y2]] covers columns x1..x2 and
rows y1..y2 inclusive), never by calling the code under test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastreasonseg.data.benchmarks import (
    BenchmarkError,
    BenchmarkFormatError,
    ReasonSegParquetConfig,
    load_benchmark,
)
from fastreasonseg.errors import FrsError

H, W = 10, 12


def rect(x1: float, y1: float, x2: float, y2: float) -> list[list[float]]:
    return [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]


def box_mask(x1: int, y1: int, x2: int, y2: int, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[y1 : y2 + 1, x1 : x2 + 1] = True
    return mask


def write_sample(split_dir: Path, stem: str, shapes: list[dict], text: list[str] | None = None,
                 is_sentence: bool = False, size: tuple[int, int] = (H, W)) -> Path:
    split_dir.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size[1], size[0]), (120, 80, 40)).save(split_dir / f"{stem}.jpg")
    annotation = {"text": text or [f"query for {stem}"], "is_sentence": is_sentence, "shapes": shapes}
    (split_dir / f"{stem}.json").write_text(json.dumps(annotation))
    return split_dir / f"{stem}.json"


def only(bench):
    samples = list(bench)
    assert len(samples) == 1
    return samples[0]


def test_target_polygon_is_rasterised_pixel_exactly(tmp_path: Path) -> None:
    write_sample(tmp_path / "val", "a", [{"label": "target", "points": rect(2, 2, 6, 5)}])
    sample = only(load_benchmark("reasonseg", tmp_path))
    assert sample.frame_paths == (tmp_path / "val" / "a.jpg",)
    assert sample.gt_mask().dtype == bool
    np.testing.assert_array_equal(sample.gt_mask(), box_mask(2, 2, 6, 5))
    assert not sample.ignore_mask().any()
    assert sample.object_ids == (1,)


def test_fractional_points_are_truncated_like_lisa(tmp_path: Path) -> None:
    points = [[2.9, 2.9], [6.99, 2.2], [6.5, 5.9], [2.1, 5.5]]
    write_sample(tmp_path / "val", "a", [{"label": "target", "points": points}])
    np.testing.assert_array_equal(only(load_benchmark("reasonseg", tmp_path)).gt_mask(), box_mask(2, 2, 6, 5))


@pytest.mark.parametrize(
    ("shapes", "expected_gt", "expected_ignore"),
    [
        pytest.param(  # a small ignore hole inside a target: painted last (smaller), so it wins
            [{"label": "target", "points": rect(1, 1, 10, 8)}, {"label": "ignore", "points": rect(3, 3, 5, 5)}],
            box_mask(1, 1, 10, 8) & ~box_mask(3, 3, 5, 5), box_mask(3, 3, 5, 5), id="ignore-inside-target"),
        pytest.param(  # a small target inside an ignore region: the target wins
            [{"label": "ignore", "points": rect(1, 1, 10, 8)}, {"label": "target", "points": rect(3, 3, 5, 5)}],
            box_mask(3, 3, 5, 5), box_mask(1, 1, 10, 8) & ~box_mask(3, 3, 5, 5), id="target-inside-ignore"),
        pytest.param(  # LISA matches "ignore" as a substring, case-insensitively; any other label is a target
            [{"label": "Ignore_region", "points": rect(0, 0, 2, 2)}, {"label": "object", "points": rect(6, 6, 8, 8)}],
            box_mask(6, 6, 8, 8), box_mask(0, 0, 2, 2), id="label-variants"),
        pytest.param(  # flag shapes are skipped entirely, whatever their case
            [{"label": "target", "points": rect(2, 2, 4, 4)}, {"label": "FLAG", "points": rect(0, 0, 11, 9)}],
            box_mask(2, 2, 4, 4), np.zeros((H, W), bool), id="flag-skipped"),
    ],
)
def test_ignore_and_flag_conventions(tmp_path: Path, shapes: list[dict], expected_gt: np.ndarray,
                                     expected_ignore: np.ndarray) -> None:
    write_sample(tmp_path / "val", "a", shapes)
    sample = only(load_benchmark("reasonseg", tmp_path))
    np.testing.assert_array_equal(sample.gt_mask(), expected_gt)
    np.testing.assert_array_equal(sample.ignore_mask(), expected_ignore)


def test_flag_count_and_instances(tmp_path: Path) -> None:
    write_sample(tmp_path / "val", "a", [
        {"label": "target", "points": rect(0, 0, 2, 2)},
        {"label": "flag", "points": rect(0, 0, 11, 9)},
        {"label": "ignore", "points": rect(4, 4, 5, 5)},
        {"label": "target", "points": rect(7, 6, 9, 8)},
    ])
    sample = only(load_benchmark("reasonseg", tmp_path))
    assert sample.metadata["num_flag_shapes"] == 1
    assert sample.object_ids == (1, 2)
    instances = sample.instance_masks()
    assert sorted(instances) == [1, 2]
    np.testing.assert_array_equal(instances[1], box_mask(0, 0, 2, 2))
    np.testing.assert_array_equal(instances[2], box_mask(7, 6, 9, 8))


def test_short_long_and_query_modes(tmp_path: Path) -> None:
    split = tmp_path / "test"
    write_sample(split, "a", [{"label": "target", "points": rect(1, 1, 3, 3)}], ["the cup", "a mug"], False)
    write_sample(split, "b", [{"label": "target", "points": rect(1, 1, 3, 3)}],
                 ["Something I could drink from after a long run.", "Where would water go?"], True)
    first = list(load_benchmark("reasonseg", tmp_path, split="test"))
    assert [(s.sample_id, s.query, s.length) for s in first] == [
        ("a#0", "the cup", "short"), ("b#0", "Something I could drink from after a long run.", "long")]
    every = load_benchmark("reasonseg", tmp_path, split="test", queries="all")
    assert len(every) == 4
    assert [s.sample_id for s in every] == ["a#0", "a#1", "b#0", "b#1"]
    long_only = load_benchmark("reasonseg", tmp_path, split="test", length="long", queries="all")
    assert {s.length for s in long_only} == {"long"} and len(long_only) == 2


def test_canvas_follows_exif_orientation_like_cv2(tmp_path: Path) -> None:
    split = tmp_path / "val"
    write_sample(split, "rot", [{"label": "target", "points": rect(1, 1, 2, 3)}])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: cv2.imread returns a W x H image
    Image.new("RGB", (W, H)).save(split / "rot.jpg", exif=exif.tobytes())
    sample = only(load_benchmark("reasonseg", tmp_path))
    assert sample.gt_mask().shape == (W, H)
    np.testing.assert_array_equal(sample.gt_mask(), box_mask(1, 1, 2, 3, shape=(W, H)))


def test_cp1252_annotation_is_read_like_lisa(tmp_path: Path) -> None:
    json_path = write_sample(tmp_path / "val", "a", [{"label": "target", "points": rect(1, 1, 2, 2)}])
    json_path.write_bytes(json.dumps({"text": ["caf\u00e9 table"], "is_sentence": False,
                                      "shapes": [{"label": "target", "points": rect(1, 1, 2, 2)}]},
                                     ensure_ascii=False).encode("cp1252"))
    assert only(load_benchmark("reasonseg", tmp_path)).query == "caf\u00e9 table"


def test_masks_are_decoded_lazily(tmp_path: Path) -> None:
    write_sample(tmp_path / "val", "a", [{"label": "target", "points": rect(1, 1, 2, 2)}])
    (tmp_path / "val" / "a.jpg").write_bytes(b"not an image")
    sample = only(load_benchmark("reasonseg", tmp_path))  # iterating does not touch the image
    assert sample.query == "query for a"
    with pytest.raises(BenchmarkFormatError, match=r"a\.jpg.*not a readable image"):
        sample.gt_mask()


@pytest.mark.parametrize(
    ("content", "field", "problem"),
    [
        ("{not json", None, "not valid JSON"),
        ({"is_sentence": False, "shapes": []}, "text", "missing"),
        ({"text": [], "is_sentence": False, "shapes": []}, "text", "no query"),
        ({"text": ["q", 3], "is_sentence": False, "shapes": []}, r"text\[1\]", "non-empty string"),
        ({"text": ["q"], "is_sentence": "yes", "shapes": []}, "is_sentence", "expected bool"),
        ({"text": ["q"], "is_sentence": False}, "shapes", "missing"),
        ({"text": ["q"], "is_sentence": False, "shapes": [{"points": rect(0, 0, 1, 1)}]}, r"shapes\[0\]\.label",
         "missing"),
        ({"text": ["q"], "is_sentence": False, "shapes": [{"label": "target", "points": [[1, 2], [3]]}]},
         r"shapes\[0\]\.points\[1\]", r"\[x, y\]"),
        ({"text": ["q"], "is_sentence": False, "shapes": [{"label": "target", "points": []}]},
         r"shapes\[0\]\.points", "empty polygon"),
    ],
)
def test_malformed_annotation_names_file_and_field(tmp_path: Path, content, field, problem) -> None:
    json_path = write_sample(tmp_path / "val", "bad", [])
    json_path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(BenchmarkFormatError, match=problem) as info:
        load_benchmark("reasonseg", tmp_path)
    assert "bad.json" in str(info.value)
    if field is not None:
        assert info.value.field is not None and re.fullmatch(field, info.value.field)
    assert isinstance(info.value, FrsError)


def test_missing_files_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    with pytest.raises(BenchmarkError, match=r"split directory .*val not found.*train"):
        load_benchmark("reasonseg", tmp_path)
    write_sample(tmp_path / "val", "a", [])
    (tmp_path / "val" / "a.json").unlink()
    with pytest.raises(BenchmarkError, match=r"a\.jpg: annotation a\.json not found"):
        load_benchmark("reasonseg", tmp_path)


def test_bad_option_values_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="queries must be 'first' or 'all'"):
        load_benchmark("reasonseg", tmp_path, queries="some")


# --------------------------------------------------------------------------- parquet variant


def jpeg_bytes(color: tuple[int, int, int], size: tuple[int, int] = (H, W)) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (size[1], size[0]), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_parquet(path: Path, columns: dict[str, list]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def segzero_columns(masks: list[np.ndarray], texts: list[str]) -> dict[str, list]:
    return {
        "image": [{"bytes": jpeg_bytes((10 * k, 0, 0)), "path": None} for k in range(len(masks))],
        "text": texts,
        "mask": [m.tolist() for m in masks],
        "image_id": [f"img{k}" for k in range(len(masks))],
        "ann_id": [str(k) for k in range(len(masks))],
        "img_height": [m.shape[0] for m in masks],
        "img_width": [m.shape[1] for m in masks],
    }


def test_parquet_default_columns_and_split_files(tmp_path: Path) -> None:
    masks = [box_mask(1, 1, 4, 3), box_mask(5, 2, 9, 8)]
    write_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", segzero_columns(masks, ["the cup", "the dog"]))
    write_parquet(tmp_path / "data" / "val-00000-of-00001.parquet", segzero_columns(masks[:1], ["other"]))
    cache = tmp_path / "cache"
    bench = load_benchmark("reasonseg_parquet", tmp_path, split="test", image_cache_dir=cache)
    assert len(bench) == 2
    samples = list(bench)
    assert [s.sample_id for s in samples] == ["img0_0", "img1_1"]
    assert [s.query for s in samples] == ["the cup", "the dog"]
    for sample, mask in zip(samples, masks, strict=True):
        np.testing.assert_array_equal(sample.gt_mask(), mask)
        assert sample.ignore_mask() is None and sample.length is None
        assert sample.image_path.is_relative_to(cache) and sample.image_path.suffix == ".jpg"
        with Image.open(sample.image_path) as image:
            assert image.size == (W, H)
    assert len(load_benchmark("reasonseg_parquet", tmp_path, split="val", image_cache_dir=cache)) == 1
    assert len(load_benchmark("reasonseg_parquet", tmp_path, image_cache_dir=cache)) == 3


def test_parquet_column_mapping_is_configurable(tmp_path: Path) -> None:
    mask = box_mask(2, 3, 5, 7)
    image_file = tmp_path / "imgs" / "x.jpg"
    image_file.parent.mkdir()
    image_file.write_bytes(jpeg_bytes((0, 50, 0)))
    write_parquet(tmp_path / "set.parquet", {
        "picture": ["imgs/x.jpg"],
        "question": ["What would I sit on?"],
        "gt": [mask.reshape(-1).tolist()],  # flat mask, reshaped with the size columns
        "uid": [42],
        "long_query": [True],
        "h": [H],
        "w": [W],
    })
    config = dict(image_column="picture", query_column="question", mask_column="gt", id_columns=("uid",),
                  is_sentence_column="long_query", height_column="h", width_column="w")
    sample = only(load_benchmark("reasonseg_parquet", tmp_path / "set.parquet", **config))
    assert (sample.sample_id, sample.query, sample.length) == ("42", "What would I sit on?", "long")
    assert sample.image_path == image_file
    np.testing.assert_array_equal(sample.gt_mask(), mask)
    assert ReasonSegParquetConfig(**config).columns == ["picture", "question", "gt", "uid", "long_query", "h", "w"]


def test_parquet_png_mask_struct(tmp_path: Path) -> None:
    import io

    mask = box_mask(0, 0, 3, 3)
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buffer, format="PNG")
    columns = segzero_columns([mask], ["q"])
    columns["mask"] = [{"bytes": buffer.getvalue(), "path": None}]
    write_parquet(tmp_path / "test.parquet", columns)
    sample = only(load_benchmark("reasonseg_parquet", tmp_path, image_cache_dir=tmp_path / "c"))
    np.testing.assert_array_equal(sample.gt_mask(), mask)


def test_parquet_errors(tmp_path: Path) -> None:
    columns = segzero_columns([box_mask(1, 1, 2, 2)], ["q"])
    del columns["ann_id"]
    write_parquet(tmp_path / "a" / "test.parquet", columns)
    with pytest.raises(BenchmarkFormatError, match=r"test\.parquet: field ann_id: column missing") as info:
        load_benchmark("reasonseg_parquet", tmp_path / "a")
    assert "image_id" in str(info.value)  # lists the columns that are there

    columns = segzero_columns([box_mask(1, 1, 2, 2)], ["q"])
    columns["img_height"] = [H + 1]
    write_parquet(tmp_path / "b" / "test.parquet", columns)
    sample = only(load_benchmark("reasonseg_parquet", tmp_path / "b", image_cache_dir=tmp_path / "c"))
    with pytest.raises(BenchmarkFormatError, match=r"row 0\.mask: mask is 10x12 but the row's height/width say 11x12"):
        sample.gt_mask()

    columns = segzero_columns([box_mask(1, 1, 2, 2)], ["q"])
    columns["mask"] = [[[True, False], [True]]]
    write_parquet(tmp_path / "c2" / "test.parquet", columns)
    sample = only(load_benchmark("reasonseg_parquet", tmp_path / "c2", image_cache_dir=tmp_path / "c"))
    with pytest.raises(BenchmarkFormatError, match="equal non-empty rows"):
        sample.gt_mask()

    with pytest.raises(BenchmarkError, match="no parquet file for split 'val'"):
        load_benchmark("reasonseg_parquet", tmp_path / "b", split="val")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "test.parquet").write_bytes(b"garbage")
    with pytest.raises(BenchmarkFormatError, match="not a readable parquet file"):
        load_benchmark("reasonseg_parquet", tmp_path / "d")
