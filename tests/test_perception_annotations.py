"""Oracle twins from tiny COCO, DAVIS and ReVOS fixtures written here."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fastreasonseg.perception.annotations import (
    AnnotationError,
    CocoAnnotations,
    DavisAnnotations,
    RevosAnnotations,
    coco_segmentation_mask,
    open_annotations,
)
from fastreasonseg.twin import DigitalTwin
from fastreasonseg.twin.masks import decode_mask, encode_mask


class RowDepth:
    """Depth stand-in: normalised depth = row / (H - 1), so the top is nearest."""

    def __init__(self):
        self.calls = 0

    def estimate(self, image):
        self.calls += 1
        height, width = image.shape[:2]
        return np.repeat(np.linspace(0, 1, height, dtype=np.float32)[:, None], width, axis=1)


def roundtrip(twin: DigitalTwin) -> DigitalTwin:
    again = DigitalTwin.from_json(twin.to_json())
    assert again == twin
    return again


# --------------------------------------------------------------------------- COCO


@pytest.fixture
def coco_file(tmp_path):
    crowd = np.zeros((20, 30), bool)
    crowd[15:20, 0:10] = True
    data = {
        "images": [{"id": 1, "file_name": "kitchen.jpg", "height": 20, "width": 30},
                   {"id": 2, "file_name": "empty.jpg", "height": 10, "width": 10}],
        "categories": [{"id": 44, "name": "knife"}, {"id": 47, "name": "cup"}],
        "annotations": [
            {"id": 501, "image_id": 1, "category_id": 44, "iscrowd": 0, "bbox": [2, 2, 8, 4],
             "segmentation": [[2, 2, 10, 2, 10, 6, 2, 6]]},
            {"id": 502, "image_id": 1, "category_id": 47, "iscrowd": 1, "bbox": [0, 15, 10, 5],
             "segmentation": {"size": [20, 30], "counts": _list_counts(crowd)}},
            {"id": 503, "image_id": 1, "category_id": 47, "iscrowd": 0, "bbox": [20, 10, 5, 5], "segmentation": []},
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(images / "kitchen.jpg")
    return path, images


def _list_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE counts (column-major runs starting with background)."""
    flat = mask.T.reshape(-1)
    counts, current, run = [], False, 0
    for value in flat:
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    return counts


def test_coco_twins_keep_ids_labels_and_masks(coco_file):
    path, images = coco_file
    source = CocoAnnotations(path, images_root=images)
    assert source.names() == ["kitchen", "empty"]
    twin = roundtrip(source.twin("kitchen"))
    assert twin.source.kind == "image" and (twin.source.width, twin.source.height) == (30, 20)
    assert twin.source.path == str(images / "kitchen.jpg")
    knife, crowd, boxed = twin.frames[0].objects
    assert (knife.id, knife.label, knife.score) == (501, "knife", 1.0)
    assert knife.box == (2.0, 2.0, 10.0, 6.0) and knife.depth is None
    assert (crowd.id, crowd.label, crowd.attributes) == (502, "cup", {"iscrowd": 1})
    assert crowd.area == 50 and crowd.box == (0.0, 15.0, 10.0, 20.0)
    assert boxed.mask is None and boxed.box == (20.0, 10.0, 25.0, 15.0)  # no segmentation: the box is the mask
    assert roundtrip(source.twin("empty")).frames[0].objects == ()


def test_coco_depth_comes_from_the_depth_model(coco_file):
    path, images = coco_file
    depth = RowDepth()
    twin = CocoAnnotations(path, images_root=images).twin("kitchen", depth=depth)
    knife, crowd, boxed = twin.frames[0].objects
    assert depth.calls == 1
    assert knife.depth.mean < boxed.depth.mean < crowd.depth.mean  # rows 2-5 < 10-14 < 15-19


def test_coco_depth_without_images_is_a_clear_error(coco_file):
    path, _ = coco_file
    with pytest.raises(AnnotationError, match="image was not found"):
        CocoAnnotations(path).twin("kitchen", depth=RowDepth())


@pytest.mark.parametrize(("segmentation", "area"), [
    ([[0, 0, 4, 0, 4, 4, 0, 4]], 16),
    ({"size": [8, 8], "counts": [0, 8, 56]}, 8),
    ([], None),
    ([[1, 2]], None),  # a degenerate polygon (fewer than 3 points) is no mask
])
def test_coco_segmentation_formats(segmentation, area):
    mask = coco_segmentation_mask(segmentation, 8, 8, "ann")
    assert (mask is None) if area is None else int(mask.sum()) == area


@pytest.mark.parametrize("bad", [{"images": []}, [1, 2], {"images": "x", "annotations": []}])
def test_coco_rejects_files_that_are_not_instances(tmp_path, bad):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(AnnotationError, match="not a COCO instances file"):
        CocoAnnotations(path)


# --------------------------------------------------------------------------- DAVIS


@pytest.fixture
def davis_root(tmp_path):
    root = tmp_path / "Annotations" / "480p"
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [255, 255, 255] * 253
    for video, frames in {"bear": 3, "car": 2}.items():
        folder = root / video
        folder.mkdir(parents=True)
        for t in range(frames):
            ids = np.zeros((12, 16), np.uint8)
            ids[2:6, 1 + t : 5 + t] = 1  # object 1 moves right
            if t >= 1:
                ids[8:11, 10:14] = 2  # object 2 appears in frame 1
            ids[0, 15] = 255  # a void pixel is not an object
            image = Image.fromarray(ids, mode="P")
            image.putpalette(palette)
            image.save(folder / f"{t:05d}.png")
    return root


def test_davis_twins_follow_pixel_value_ids(davis_root):
    source = DavisAnnotations(davis_root, labels={"bear": {1: "bear"}}, fps=24.0)
    assert source.names() == ["bear", "car"]
    twin = roundtrip(source.twin("bear"))
    assert twin.source.kind == "video" and twin.source.num_frames == 3 and twin.source.fps == 24.0
    assert [f.time for f in twin.frames] == pytest.approx([0, 1 / 24, 2 / 24])
    assert twin.track_ids == [1, 2]
    assert [i for i, _ in twin.track(2)] == [1, 2]
    assert [obj.box for _, obj in twin.track(1)] == [(1.0 + t, 2.0, 5.0 + t, 6.0) for t in range(3)]
    assert twin.object(1).label == "bear" and twin.object(2).label == "object"
    assert 255 not in twin.track_ids


def test_davis_single_video_folder_and_depth(davis_root, tmp_path):
    frames = tmp_path / "JPEGImages" / "car"
    frames.mkdir(parents=True)
    for t in range(2):
        Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(frames / f"{t:05d}.jpg")
    source = DavisAnnotations(davis_root / "car", images_root=frames)
    assert source.names() == ["car"]
    depth = RowDepth()
    twin = source.twin("car", depth=depth)
    assert depth.calls == 2 and twin.source.path == str(frames)
    near, far = twin.object(1, 1), twin.object(2, 1)
    assert near.depth.mean < far.depth.mean


def test_davis_rejects_rgb_masks(tmp_path):
    folder = tmp_path / "video"
    folder.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / "00000.png")
    with pytest.raises(AnnotationError, match="indexed"):
        DavisAnnotations(folder).twin("video")


# --------------------------------------------------------------------------- ReVOS


@pytest.fixture
def revos_files(tmp_path):
    def rle(box):
        mask = np.zeros((10, 14), bool)
        x1, y1, x2, y2 = box
        mask[y1:y2, x1:x2] = True
        return encode_mask(mask)

    meta = {"videos": {
        "vid_a": {"vid_id": 0, "frames": ["f0", "f1", "f2"], "expressions": {
            "0": {"exp": "the cat that jumps", "obj_id": [0], "anno_id": [11], "type_id": 0},
            "1": {"exp": "both animals", "obj_id": [0, 1], "anno_id": [11, 12], "type_id": 1}}},
        "vid_b": {"vid_id": 1, "frames": ["f0", "f1"], "expressions": {
            "0": {"exp": "the missing one", "obj_id": [0], "anno_id": [99], "type_id": 0}}},
    }}
    masks = {"11": [rle((1, 1, 4, 4)), rle((2, 1, 5, 4)), None],
             "12": [None, rle((8, 5, 12, 9)), rle((8, 5, 12, 9))]}
    meta_path = tmp_path / "meta_expressions_valid_.json"
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    (tmp_path / "mask_dict.json").write_text(json.dumps(masks), encoding="utf-8")
    return meta_path


def test_revos_twins_use_anno_ids_and_null_frames(revos_files):
    source = RevosAnnotations(revos_files)
    assert source.names() == ["vid_a", "vid_b"]
    twin = roundtrip(source.twin("vid_a"))
    assert (twin.source.width, twin.source.height, twin.source.num_frames) == (14, 10, 3)
    assert [f.ids for f in twin.frames] == [[11], [11, 12], [12]]
    assert twin.object(11, 1).box == (2.0, 1.0, 5.0, 4.0)
    assert np.array_equal(decode_mask(twin.object(12, 2).mask)[5:9, 8:12], np.ones((4, 4), bool))
    # Expression texts stay out of the twin: they would give the reasoner the answer.
    assert "cat" not in twin.to_json()


def test_revos_missing_anno_id_is_reported_per_video(revos_files):
    source = open_annotations("revos", revos_files.parent)  # a folder finds meta_expressions*.json
    with pytest.raises(AnnotationError, match="anno_id 99 is not in mask_dict"):
        source.twin("vid_b")
    assert source.twin("vid_a").track_ids == [11, 12]


def test_unknown_annotation_format():
    with pytest.raises(AnnotationError, match="unknown annotation format"):
        open_annotations("voc", "x")
