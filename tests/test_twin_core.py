"""The digital twin v1 type: lossless JSON round trips, every validation error path, the helpers."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fastreasonseg.twin import (
    SCHEMA,
    Depth,
    DigitalTwin,
    Frame,
    Source,
    TwinValidationError,
    box_to_mask,
    decode_mask,
    encode_mask,
    make_object,
    validate_twin,
)

H, W = 12, 16


def block(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """Mask with rows r0..r1-1 and cols c0..c1-1 set (numpy slice bounds)."""
    mask = np.zeros((H, W), dtype=bool)
    mask[r0:r1, c0:c1] = True
    return mask


def image_twin(with_masks: bool = True) -> DigitalTwin:
    cup_mask = block(2, 6, 3, 7) if with_masks else None
    plate_mask = block(7, 11, 8, 15) if with_masks else None
    objects = (
        make_object(3, "cup", 0.9, [3, 2, 7, 6], mask=cup_mask, depth=(0.25, 0.02), attributes={"color": "red"}),
        make_object(8, "plate", 0.75, [8, 7, 15, 11], mask=plate_mask, depth=(0.8, 0.1)),
        make_object(9, "knife", 0.5, [0, 0, 4, 1]),  # never has a mask: its box is its mask
    )
    return DigitalTwin(source=Source(kind="image", width=W, height=H, path="kitchen.jpg"),
                       frames=(Frame(index=0, time=0.0, objects=objects),))


def video_twin() -> DigitalTwin:
    frames = []
    for index in range(3):
        objects = [make_object(1, "ball", 0.8, [index, 0, index + 4, 4], mask=block(0, 4, index, index + 4),
                               depth=(0.5, 0.0))]
        if index == 1:
            objects.append(make_object(2, "dog", 0.6, [10, 6, 16, 12], mask=block(6, 12, 10, 16)))
        frames.append(Frame(index=index * 5, time=index * 5 / 10.0, objects=tuple(objects)))
    return DigitalTwin(source=Source(kind="video", width=W, height=H, fps=10.0, num_frames=15, path="clip.mp4"),
                       frames=tuple(frames))


def valid_dict() -> dict:
    return image_twin().to_dict()


def video_dict() -> dict:
    return video_twin().to_dict()


def obj0(data: dict) -> dict:
    return data["frames"][0]["objects"][0]


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize(
    "factory",
    [lambda: image_twin(True), lambda: image_twin(False), video_twin],
    ids=["image-masks", "image-boxes-only", "video"],
)
def test_json_round_trip_is_lossless(factory: Callable[[], DigitalTwin], tmp_path: Path) -> None:
    twin = factory()
    assert DigitalTwin.from_dict(twin.to_dict()) == twin
    assert DigitalTwin.from_json(twin.to_json()) == twin
    path = twin.save(tmp_path / "nested" / "twin.json", indent=2)
    loaded = DigitalTwin.load(path)
    assert loaded == twin
    assert loaded.to_json() == twin.to_json()
    assert not list(path.parent.glob("*.tmp"))  # atomic save leaves no temp file
    for frame, obj in loaded.iter_objects():
        np.testing.assert_array_equal(loaded.object_mask(obj), twin.object_mask(twin.object(obj.id, frame.index)))


def test_round_trip_keeps_json_values_exactly() -> None:
    data = valid_dict()
    again = DigitalTwin.from_dict(json.loads(json.dumps(data))).to_dict()
    assert again == data
    assert obj0(again)["attributes"] == {"color": "red"}
    assert obj0(again)["depth"] == {"mean": 0.25, "std": 0.02}


def test_uncompressed_rle_is_normalised_to_string() -> None:
    mask = block(2, 6, 3, 7)
    # column-major run lengths, as COCO's uncompressed RLE: 3*12+2 zeros, then 4 ones, 8 zeros, ...
    flat = mask.flatten(order="F").astype(int)
    runs, value, count = [], 0, 0
    for bit in flat:
        if bit != value:
            runs.append(count)
            value, count = bit, 0
        count += 1
    runs.append(count)
    data = valid_dict()
    obj0(data)["mask"] = {"size": [H, W], "counts": runs}
    twin = DigitalTwin.from_dict(data)
    stored = twin.frames[0].objects[0].mask
    assert isinstance(stored["counts"], str)
    assert stored == encode_mask(mask)
    np.testing.assert_array_equal(decode_mask(stored), mask)
    assert DigitalTwin.from_dict(twin.to_dict()) == twin


def test_hand_written_twin_derives_area_and_centroid() -> None:
    # an L of 4 pixels: (x, y) centres (3.5, 2.5), (3.5, 3.5), (3.5, 4.5), (4.5, 4.5); box centre would be (4, 3.5)
    mask = block(2, 5, 3, 4) | block(4, 5, 4, 5)
    data = {"schema": SCHEMA, "source": {"kind": "image", "width": W, "height": H},
            "frames": [{"index": 0, "objects": [
                {"id": 1, "label": "cup", "box": [3, 2, 5, 5], "mask": encode_mask(mask)},
                {"id": 2, "label": "tray", "box": [0, 0, 4, 2]}]}]}
    twin = DigitalTwin.from_dict(data)
    cup, tray = twin.frames[0].objects
    assert (cup.area, cup.centroid) == (4, (3.75, 3.75))
    assert (tray.area, tray.centroid) == (8.0, (2.0, 1.0))
    assert cup.score == 1.0 and cup.depth is None and cup.attributes == {}
    assert twin.source.num_frames == 1 and twin.source.fps is None and twin.frames[0].time == 0.0


# --------------------------------------------------------------------------- validation errors


def _set(path: list, value) -> Callable[[dict], None]:
    def mutate(data: dict) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


def _delete(path: list) -> Callable[[dict], None]:
    def mutate(data: dict) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return mutate


OBJ_KEYS = ["frames", 0, "objects", 0]  # path of the first object
OBJ = "frames[0].objects[0]"

INVALID_CASES = [
    # root
    ("root-not-object", lambda d: d.clear() or d.update({"x": 1}), "<root>"),
    ("bad-schema", _set(["schema"], "fastreasonseg.twin/v0"), "schema"),
    ("schema-missing", _delete(["schema"]), "schema"),
    ("schema-not-string", _set(["schema"], 1), "schema"),
    ("unknown-root-field", _set(["extra"], 1), "<root>"),
    ("frames-not-list", _set(["frames"], {"0": {}}), "frames"),
    ("frames-empty", _set(["frames"], []), "frames"),
    # source
    ("source-not-object", _set(["source"], [640, 480]), "source"),
    ("source-kind", _set(["source", "kind"], "audio"), "source.kind"),
    ("source-width-string", _set(["source", "width"], "16"), "source.width"),
    ("source-width-zero", _set(["source", "width"], 0), "source.width"),
    ("source-height-bool", _set(["source", "height"], True), "source.height"),
    ("source-height-float", _set(["source", "height"], 12.5), "source.height"),
    ("source-num-frames", _set(["source", "num_frames"], 0), "source.num_frames"),
    ("source-path", _set(["source", "path"], 5), "source.path"),
    ("source-fps-string", _set(["source", "fps"], "30"), "source.fps"),
    ("source-fps-nan", _set(["source", "fps"], math.nan), "source.fps"),
    ("source-unknown", _set(["source", "duration"], 3.0), "source"),
    # frame
    ("frame-not-object", _set(["frames", 0], "frame"), "frames[0]"),
    ("frame-index-string", _set(["frames", 0, "index"], "0"), "frames[0].index"),
    ("frame-index-negative", _set(["frames", 0, "index"], -1), "frames[0].index"),
    ("frame-index-missing", _delete(["frames", 0, "index"]), "frames[0].index"),
    ("frame-index-beyond-num-frames", _set(["frames", 0, "index"], 1), "frames[0].index"),
    ("frame-time-string", _set(["frames", 0, "time"], "0s"), "frames[0].time"),
    ("frame-time-inf", _set(["frames", 0, "time"], math.inf), "frames[0].time"),
    ("frame-objects-not-list", _set(["frames", 0, "objects"], {}), "frames[0].objects"),
    ("frame-unknown", _set(["frames", 0, "image"], "x.jpg"), "frames[0]"),
    # object fields
    ("object-not-object", _set([*OBJ_KEYS], [1, 2]), OBJ),
    ("id-missing", _delete([*OBJ_KEYS, "id"]), f"{OBJ}.id"),
    ("id-string", _set([*OBJ_KEYS, "id"], "3"), f"{OBJ}.id"),
    ("id-float", _set([*OBJ_KEYS, "id"], 3.5), f"{OBJ}.id"),
    ("id-bool", _set([*OBJ_KEYS, "id"], True), f"{OBJ}.id"),
    ("id-negative", _set([*OBJ_KEYS, "id"], -2), f"{OBJ}.id"),
    ("id-huge", _set([*OBJ_KEYS, "id"], 10**400), f"{OBJ}.id"),
    ("label-number", _set([*OBJ_KEYS, "label"], 7), f"{OBJ}.label"),
    ("label-blank", _set([*OBJ_KEYS, "label"], "  "), f"{OBJ}.label"),
    ("score-string", _set([*OBJ_KEYS, "score"], "high"), f"{OBJ}.score"),
    ("score-above-one", _set([*OBJ_KEYS, "score"], 1.5), f"{OBJ}.score"),
    ("score-negative", _set([*OBJ_KEYS, "score"], -0.1), f"{OBJ}.score"),
    ("score-nan", _set([*OBJ_KEYS, "score"], math.nan), f"{OBJ}.score"),
    ("box-missing", _delete([*OBJ_KEYS, "box"]), f"{OBJ}.box"),
    ("box-string", _set([*OBJ_KEYS, "box"], "3,2,7,6"), f"{OBJ}.box"),
    ("box-three-values", _set([*OBJ_KEYS, "box"], [3, 2, 7]), f"{OBJ}.box"),
    ("box-value-string", _set([*OBJ_KEYS, "box"], [3, "2", 7, 6]), f"{OBJ}.box[1]"),
    ("box-inf", _set([*OBJ_KEYS, "box"], [3, 2, math.inf, 6]), f"{OBJ}.box[2]"),
    ("box-nan", _set([*OBJ_KEYS, "box"], [math.nan, 2, 7, 6]), f"{OBJ}.box[0]"),
    ("box-x2-before-x1", _set([*OBJ_KEYS, "box"], [7, 2, 3, 6]), f"{OBJ}.box"),
    ("box-y2-before-y1", _set([*OBJ_KEYS, "box"], [3, 6, 7, 2]), f"{OBJ}.box"),
    ("box-outside-right", _set([*OBJ_KEYS, "box"], [3, 2, W + 5, 6]), f"{OBJ}.box"),
    ("box-outside-top", _set([*OBJ_KEYS, "box"], [3, -4, 7, 6]), f"{OBJ}.box"),
    ("mask-not-object", _set([*OBJ_KEYS, "mask"], [1, 2]), f"{OBJ}.mask"),
    ("mask-size-string", _set([*OBJ_KEYS, "mask", "size"], "12x16"), f"{OBJ}.mask.size"),
    ("mask-size-zero", _set([*OBJ_KEYS, "mask", "size"], [0, W]), f"{OBJ}.mask.size[0]"),
    ("mask-size-mismatch", lambda d: d["frames"][0]["objects"][0].update(mask=encode_mask(np.ones((H, W + 1), bool))),
     f"{OBJ}.mask.size"),
    ("mask-counts-number", _set([*OBJ_KEYS, "mask", "counts"], 5), f"{OBJ}.mask.counts"),
    ("mask-counts-missing", _delete([*OBJ_KEYS, "mask", "counts"]), f"{OBJ}.mask.counts"),
    ("mask-counts-bad-chars", _set([*OBJ_KEYS, "mask", "counts"], "!!!!"), f"{OBJ}.mask.counts"),
    ("mask-counts-too-short", _set([*OBJ_KEYS, "mask", "counts"], "0"), f"{OBJ}.mask.counts"),
    ("mask-counts-empty", _set([*OBJ_KEYS, "mask", "counts"], ""), f"{OBJ}.mask.counts"),
    ("mask-counts-truncated", _set([*OBJ_KEYS, "mask", "counts"], "0`"), f"{OBJ}.mask.counts"),
    ("mask-counts-non-ascii", _set([*OBJ_KEYS, "mask", "counts"], "é5"), f"{OBJ}.mask.counts"),
    ("mask-counts-list-sum", _set([*OBJ_KEYS, "mask", "counts"], [10, 5]), f"{OBJ}.mask.counts"),
    ("mask-counts-list-negative", _set([*OBJ_KEYS, "mask", "counts"], [H * W + 1, -1]), f"{OBJ}.mask.counts"),
    ("mask-unknown", _set([*OBJ_KEYS, "mask", "format"], "rle"), f"{OBJ}.mask"),
    ("depth-not-object", _set([*OBJ_KEYS, "depth"], 0.3), f"{OBJ}.depth"),
    ("depth-mean-above-one", _set([*OBJ_KEYS, "depth", "mean"], 1.2), f"{OBJ}.depth.mean"),
    ("depth-mean-negative", _set([*OBJ_KEYS, "depth", "mean"], -0.2), f"{OBJ}.depth.mean"),
    ("depth-mean-missing", _delete([*OBJ_KEYS, "depth", "mean"]), f"{OBJ}.depth.mean"),
    ("depth-mean-nan", _set([*OBJ_KEYS, "depth", "mean"], math.nan), f"{OBJ}.depth.mean"),
    ("depth-std-negative", _set([*OBJ_KEYS, "depth", "std"], -0.1), f"{OBJ}.depth.std"),
    ("depth-unknown", _set([*OBJ_KEYS, "depth", "median"], 0.3), f"{OBJ}.depth"),
    ("area-string", _set([*OBJ_KEYS, "area"], "16"), f"{OBJ}.area"),
    ("area-negative", _set([*OBJ_KEYS, "area"], -1), f"{OBJ}.area"),
    ("centroid-one-value", _set([*OBJ_KEYS, "centroid"], [1.0]), f"{OBJ}.centroid"),
    ("centroid-value-string", _set([*OBJ_KEYS, "centroid"], [1.0, "y"]), f"{OBJ}.centroid[1]"),
    ("attributes-list", _set([*OBJ_KEYS, "attributes"], ["red"]), f"{OBJ}.attributes"),
    ("attributes-empty-list", _set([*OBJ_KEYS, "attributes"], []), f"{OBJ}.attributes"),
    ("attributes-object", _set([*OBJ_KEYS, "attributes"], {"x": object()}), f"{OBJ}.attributes"),
    ("attributes-nan", _set([*OBJ_KEYS, "attributes"], {"x": math.nan}), f"{OBJ}.attributes"),
    ("attributes-int-key", _set([*OBJ_KEYS, "attributes"], {1: "x"}), f"{OBJ}.attributes"),
    ("attributes-tuple", _set([*OBJ_KEYS, "attributes"], {"xy": (1, 2)}), f"{OBJ}.attributes"),
    ("object-unknown", _set([*OBJ_KEYS, "colour"], "red"), OBJ),
    # cross-field
    ("duplicate-id", lambda d: d["frames"][0]["objects"][1].update(id=3), "frames[0].objects[1].id"),
    ("image-several-frames",
     lambda d: d["frames"].append(dict(copy.deepcopy(d["frames"][0]), index=1)) or d["source"].update(num_frames=2),
     "frames"),
    ("more-frames-than-num-frames", lambda d: d["frames"].append(dict(copy.deepcopy(d["frames"][0]), index=1)),
     "frames"),
]


@pytest.mark.parametrize(("mutate", "path"), [c[1:] for c in INVALID_CASES], ids=[c[0] for c in INVALID_CASES])
def test_invalid_twin_names_field(mutate: Callable[[dict], None], path: str) -> None:
    data = valid_dict()
    mutate(data)
    with pytest.raises(TwinValidationError) as info:
        DigitalTwin.from_dict(data)
    errors = info.value.errors
    assert any(e.startswith(path + ":") for e in errors), errors
    assert path in str(info.value)
    assert validate_twin(data) == errors


VIDEO_CASES = [
    ("indices-repeat", _set(["frames", 1, "index"], 0), "frames[1].index"),
    ("indices-decrease", _set(["frames", 2, "index"], 2), "frames[2].index"),
    ("index-beyond-num-frames", _set(["frames", 2, "index"], 15), "frames[2].index"),
    ("duplicate-id-in-later-frame", lambda d: d["frames"][1]["objects"][1].update(id=1), "frames[1].objects[1].id"),
    ("deep-object-error", _set(["frames", 2, "objects", 0, "score"], 2), "frames[2].objects[0].score"),
]


@pytest.mark.parametrize(("mutate", "path"), [c[1:] for c in VIDEO_CASES], ids=[c[0] for c in VIDEO_CASES])
def test_invalid_video_twin_names_field(mutate: Callable[[dict], None], path: str) -> None:
    data = video_dict()
    mutate(data)
    with pytest.raises(TwinValidationError) as info:
        DigitalTwin.from_dict(data)
    assert any(e.startswith(path + ":") for e in info.value.errors), info.value.errors


@pytest.mark.parametrize("data", [None, [], "twin", 3], ids=["none", "list", "string", "number"])
def test_non_object_root(data) -> None:
    with pytest.raises(TwinValidationError, match="<root>"):
        DigitalTwin.from_dict(data)


def test_every_problem_is_reported_at_once() -> None:
    data = valid_dict()
    obj0(data)["score"] = 3
    data["frames"][0]["objects"][1]["label"] = ""
    data["source"]["kind"] = "movie"
    errors = validate_twin(data)
    assert {e.split(":")[0] for e in errors} >= {"source.kind", f"{OBJ}.score", "frames[0].objects[1].label"}


@pytest.mark.parametrize(
    "text",
    ["{", "", "not json", '{"schema": ', "[1, 2,]"],
    ids=["open-brace", "empty", "words", "truncated", "trailing-comma"],
)
def test_not_json_text(text: str) -> None:
    with pytest.raises(TwinValidationError, match="not valid JSON"):
        DigitalTwin.from_json(text)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_json_nan_literals_are_rejected(literal: str) -> None:
    text = image_twin().to_json().replace('"score": 0.9', f'"score": {literal}', 1)
    with pytest.raises(TwinValidationError) as info:
        DigitalTwin.from_json(text)
    assert any(e.startswith(f"{OBJ}.score:") for e in info.value.errors)


def test_save_refuses_nan_instead_of_writing_invalid_json(tmp_path: Path) -> None:
    twin = image_twin()
    obj = twin.frames[0].objects[0]
    # attributes are checked on construction, so the only way to smuggle NaN in is after the fact
    obj.attributes["x"] = math.nan
    with pytest.raises(ValueError):
        twin.save(tmp_path / "t.json")
    assert not (tmp_path / "t.json").exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read"),  # missing file
        ("dir", "cannot read"),  # a directory
        (b"\xff\xfe\x00bad", "cannot read"),  # not UTF-8
        (b"{oops", "not valid JSON"),
        (b'{"schema": "fastreasonseg.twin/v1"}', "source"),
    ],
    ids=["missing", "directory", "binary", "not-json", "incomplete"],
)
def test_load_bad_files(tmp_path: Path, content, expected: str) -> None:
    path = tmp_path / "twin.json"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(TwinValidationError) as info:
        DigitalTwin.load(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("build", "path"),
    [
        (lambda: Frame(0, 0.0, (make_object(1, "a", 0.5, [0, 0, 2, 2]), make_object(1, "b", 0.5, [0, 0, 2, 2]))),
         "frames[0].objects[1].id"),
        (lambda: Frame(0, 0.0, (make_object(1, "a", 0.5, [0, 0, 99, 2]),)), "frames[0].objects[0].box"),
        (lambda: Frame(0, 0.0, (make_object(1, "a", 1.5, [0, 0, 2, 2]),)), "frames[0].objects[0].score"),
        (lambda: Frame(0, 0.0, (make_object(1, "a", 0.5, [0, 0, 2, 2], depth=(1.5, 0.0)),)),
         "frames[0].objects[0].depth.mean"),
        (lambda: Frame(0, 0.0, (make_object(1, "a", 0.5, [0, 0, 2, 2], mask=np.ones((3, 3), bool)),)),
         "frames[0].objects[0].mask.size"),
        (lambda: Frame(0, 0.0, (make_object(1, "a", 0.5, [0, 0, 2, 2], attributes={"k": {1, 2}}),)),
         "frames[0].objects[0].attributes"),
        (lambda: Frame(3, 0.0, ()), "frames[0].index"),
    ],
    ids=["duplicate-id", "box-outside", "score", "depth", "mask-size", "attributes-set", "index"],
)
def test_constructor_validates_too(build: Callable[[], Frame], path: str) -> None:
    with pytest.raises(TwinValidationError) as info:
        DigitalTwin(source=Source(kind="image", width=W, height=H), frames=(build(),))
    assert any(e.startswith(path + ":") for e in info.value.errors), info.value.errors


def test_constructor_rejects_no_frames_and_bad_schema() -> None:
    with pytest.raises(TwinValidationError, match="frames: a twin needs at least one frame"):
        DigitalTwin(source=Source(kind="image", width=W, height=H), frames=())
    with pytest.raises(TwinValidationError, match="schema"):
        DigitalTwin(source=Source(kind="image", width=W, height=H), frames=(Frame(0, 0.0),), schema="v2")


def test_box_tolerance_allows_rounding_hair() -> None:
    data = valid_dict()
    obj0(data)["box"] = [-0.5, 2, W + 0.5, 6]
    assert DigitalTwin.from_dict(data).frames[0].objects[0].box == (-0.5, 2.0, W + 0.5, 6.0)


# --------------------------------------------------------------------------- helpers


def test_object_by_id() -> None:
    twin = video_twin()
    assert twin.object(1).box == (0.0, 0.0, 4.0, 4.0)  # first frame it is in
    assert twin.object(1, frame_index=10).box == (2.0, 0.0, 6.0, 4.0)
    assert twin.object(2).label == "dog"
    assert twin.frame(5).object(2).label == "dog" and twin.frame(0).object(2) is None
    with pytest.raises(KeyError, match="no object with id 7"):
        twin.object(7)
    with pytest.raises(KeyError, match="in frame 0"):
        twin.object(2, frame_index=0)
    with pytest.raises(KeyError, match="no frame with index 3"):
        twin.frame(3)


def test_track_across_frames() -> None:
    twin = video_twin()
    assert [index for index, _ in twin.track(1)] == [0, 5, 10]
    assert [obj.box[0] for _, obj in twin.track(1)] == [0.0, 1.0, 2.0]
    assert [index for index, _ in twin.track(2)] == [5]
    assert twin.track(99) == []
    assert twin.track_ids == [1, 2]
    assert twin.has_id(2) and not twin.has_id(99)
    assert twin.is_video and not image_twin().is_video


def test_union_mask() -> None:
    twin = image_twin()
    union = twin.union_mask([3, 8], 0)
    assert union.shape == (H, W) and union.dtype == bool
    np.testing.assert_array_equal(union, block(2, 6, 3, 7) | block(7, 11, 8, 15))
    np.testing.assert_array_equal(twin.union_mask([3, 404], 0), block(2, 6, 3, 7))  # absent ids add nothing
    assert not twin.union_mask([], 0).any()
    video = video_twin()
    assert video.union_mask([2], 0).sum() == 0 and video.union_mask([2], 5).sum() == 36


def test_object_mask_without_mask_is_its_box() -> None:
    twin = image_twin()
    knife = twin.object(9)
    assert knife.mask is None
    expected = np.zeros((H, W), bool)
    expected[0:1, 0:4] = True  # box [0, 0, 4, 1]: pixel centres 0.5..3.5 by 0.5
    np.testing.assert_array_equal(twin.object_mask(knife), expected)
    np.testing.assert_array_equal(box_to_mask((2, 3, 5, 7), 10, 10), _pixel_box(3, 7, 2, 5))


def _pixel_box(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    out = np.zeros((10, 10), bool)
    out[r0:r1, c0:c1] = True
    return out


def test_select_keeps_frames() -> None:
    video = video_twin()
    only_dog = video.select([2])
    assert [f.index for f in only_dog.frames] == [0, 5, 10]
    assert [f.ids for f in only_dog.frames] == [[], [2], []]
    assert only_dog.source == video.source
    assert image_twin().select([]).frames[0].objects == ()


def test_merge_reassigns_ids() -> None:
    base = image_twin()
    merged = base.merge(image_twin())
    assert merged.frames[0].ids == [3, 8, 9, 13, 18, 19]  # other's ids + 10, past the largest id (9)
    assert merged.object(13).label == "cup" and merged.object(13).mask == base.object(3).mask
    with pytest.raises(TwinValidationError, match="duplicate id"):
        base.merge(image_twin(), reassign_ids=False)


def test_merge_video_frames_and_sizes() -> None:
    video = video_twin()
    extra = DigitalTwin(source=Source(kind="video", width=W, height=H, num_frames=30, fps=10.0),
                        frames=(Frame(index=20, time=2.0, objects=(make_object(0, "cat", 0.7, [0, 0, 3, 3]),)),))
    merged = video.merge(extra)
    assert [f.index for f in merged.frames] == [0, 5, 10, 20]
    assert merged.source.num_frames == 30
    assert merged.object(3, frame_index=20).label == "cat"
    # an image merged with a later frame becomes a video whose num_frames covers that frame
    image = DigitalTwin(source=Source(kind="image", width=W, height=H), frames=(Frame(0, 0.0),))
    later = DigitalTwin(source=Source(kind="image", width=W, height=H), frames=(Frame(0, 0.0),))
    assert image.merge(later).source.kind == "image"
    with pytest.raises(ValueError, match="different sizes"):
        video.merge(DigitalTwin(source=Source(kind="image", width=W + 1, height=H), frames=(Frame(0, 0.0),)))


@pytest.mark.parametrize(
    ("mask", "box", "area", "centroid"),
    [
        (None, [2, 4, 6, 10], 24.0, (4.0, 7.0)),
        (block(2, 6, 3, 7), [3, 2, 7, 6], 16, (5.0, 4.0)),
        (block(0, 1, 0, 3), [0, 0, 3, 1], 3, (1.5, 0.5)),
        (encode_mask(block(0, 2, 0, 2)), [0, 0, 2, 2], 4, (1.0, 1.0)),  # RLE dict input
        ({"size": [H, W], "counts": [0, 2, H - 2, 2, H * W - H - 2]}, [0, 0, 2, 2], 4, (1.0, 1.0)),  # list counts
        (np.zeros((H, W), bool), [1, 1, 3, 5], 0, (2.0, 3.0)),  # empty mask: centroid falls back to the box
    ],
    ids=["box-only", "square-mask", "row-mask", "rle-dict", "rle-list", "empty-mask"],
)
def test_make_object_area_and_centroid(mask, box, area, centroid) -> None:
    obj = make_object(4, "thing", 0.5, box, mask=mask, depth=(0.3, 0.05))
    assert obj.area == area
    assert obj.centroid == pytest.approx(centroid)
    assert obj.depth == Depth(mean=0.3, std=0.05)
    assert obj.box == tuple(float(v) for v in box)
    assert obj.width == box[2] - box[0] and obj.height == box[3] - box[1]
    if mask is not None:
        assert isinstance(obj.mask["counts"], str)


def test_decode_mask_refuses_corrupt_rle() -> None:
    # pycocotools would return uninitialised memory for these instead of raising
    for counts in ("0", "", "!!"):
        with pytest.raises(ValueError, match="invalid COCO RLE"):
            decode_mask({"size": [4, 4], "counts": counts})


@pytest.mark.parametrize(
    ("counts", "runs"),
    [
        ("0`0", [0, 16]),  # 4x4 all ones: '`' = 0x30 carries 16 into the next digit
        ("01400000", [0, 1, 4, 1, 4, 1, 4, 1]),  # 4x4 identity; runs from the 4th on are deltas of zero
        ("", []),
    ],
    ids=["full", "identity", "empty"],
)
def test_rle_string_counts_hand_decoded(counts: str, runs: list[int]) -> None:
    from fastreasonseg.twin.masks import rle_string_counts

    assert rle_string_counts(counts).tolist() == runs
    if runs:
        assert rle_string_counts(encode_mask(decode_mask({"size": [4, 4], "counts": counts}))["counts"]).tolist() == runs
