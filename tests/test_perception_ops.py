"""Perception's numeric pieces: boxes/NMS, OWLv2 padding, SAM 2 preprocessing, depth convention, vocabulary, config."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastreasonseg.perception.config import PerceptionConfig
from fastreasonseg.perception.detector import Detection, merge_duplicates, postprocess_detections
from fastreasonseg.perception.ops import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    box_iou,
    class_aware_nms,
    depth_stats,
    nms,
    normalize_depth,
    owlv2_boxes_to_pixels,
    sam2_preprocess,
    scale_boxes_to_sam,
    upsample_mask_logits,
)
from fastreasonseg.perception.vocabulary import build_vocabulary, default_vocabulary, nouns_from_query, parse_vocabulary

# --------------------------------------------------------------------------- boxes


@pytest.mark.parametrize(("a", "b", "expected"), [
    ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
    ([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150),
    ([0, 0, 10, 10], [10, 0, 20, 10], 0.0),  # touching edges
    ([0, 0, 10, 10], [2, 2, 4, 4], 4 / 100),  # contained
    ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),  # degenerate: no division by zero
])
def test_box_iou_table(a, b, expected):
    assert box_iou(np.array([a]), np.array([b]))[0, 0] == pytest.approx(expected)


def test_nms_keeps_best_of_overlapping_and_disjoint_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 9]], dtype=float)
    scores = np.array([0.5, 0.9, 0.3, 0.6])
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    # A threshold above every overlap keeps all boxes, best first.
    assert nms(boxes, scores, 0.99).tolist() == [1, 3, 0, 2]


def test_class_aware_nms_does_not_suppress_across_labels():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], dtype=float)
    scores = np.array([0.9, 0.8, 0.7])
    classes = np.array([0, 1, 0])
    assert class_aware_nms(boxes, scores, classes, 0.5).tolist() == [0, 1]


def test_merge_duplicates_keeps_the_best_label_and_records_the_other():
    dets = [Detection((0, 0, 10, 10), "mug", 0.9), Detection((0, 0, 10, 10.5), "cup", 0.8),
            Detection((40, 40, 50, 50), "cup", 0.7)]
    merged = merge_duplicates(dets, 0.85)
    assert [(d.label, d.alt_labels) for d in merged] == [("mug", ["cup"]), ("cup", [])]


# --------------------------------------------------------------------------- OWLv2 padding


@pytest.mark.parametrize(("height", "width"), [(300, 600), (600, 300), (400, 400)])
def test_owlv2_boxes_are_fractions_of_the_padded_square(height, width):
    side = max(height, width)
    # An object at pixels x 60..180, y 30..90 of the original image: in OWLv2's padded square
    # (padding at bottom/right) its normalised box is the pixel box divided by the side.
    cx, cy, w, h = 120 / side, 60 / side, 120 / side, 60 / side
    box = owlv2_boxes_to_pixels(np.array([[cx, cy, w, h]]), height, width)[0]
    assert box == pytest.approx([60, 30, 180, 90])


def test_owlv2_boxes_reaching_into_the_padding_are_clipped_to_the_image():
    # A 300x600 (H x W) image padded to 600x600: a box spanning the lower half of the square
    # lies mostly in the padding.
    box = owlv2_boxes_to_pixels(np.array([[0.5, 0.5, 0.2, 0.4]]), 300, 600)[0]
    assert box == pytest.approx([240, 180, 360, 300])


def test_postprocess_detections_with_a_controlled_model_output():
    """Deterministic stand-in for OWLv2's output, run through the real post-processing."""
    labels = ["cup", "knife", "table"]
    height, width = 240, 480  # padded square side 480
    logits = np.full((5, 3), -8.0)
    logits[0, 1] = 3.0  # knife at pixels (48, 24)-(144, 72)
    logits[1, 1] = 2.0  # a weaker duplicate of the knife: removed by NMS
    logits[2, 0] = 1.0  # cup in the bottom-right
    logits[3, 2] = 0.5  # a box entirely in the padding: dropped
    logits[4, 2] = -5.0  # below threshold
    boxes = np.array([[96 / 480, 48 / 480, 96 / 480, 48 / 480],
                      [98 / 480, 49 / 480, 96 / 480, 48 / 480],
                      [400 / 480, 200 / 480, 40 / 480, 40 / 480],
                      [0.5, 0.9, 0.2, 0.1],
                      [0.5, 0.2, 0.1, 0.1]])
    dets = postprocess_detections(logits, boxes, labels, height, width, score_threshold=0.3, nms_iou=0.5,
                                  merge_iou=0.85, max_detections=10)
    assert [d.label for d in dets] == ["knife", "cup"]
    assert dets[0].box == pytest.approx((48, 24, 144, 72))
    assert dets[0].score == pytest.approx(1 / (1 + np.exp(-3.0)), abs=1e-4)
    assert dets[1].box == pytest.approx((380, 180, 420, 220))


def test_postprocess_rejects_mismatched_label_count():
    with pytest.raises(ValueError, match="logits must be"):
        postprocess_detections(np.zeros((4, 2)), np.zeros((4, 4)), ["a", "b", "c"], 10, 10, score_threshold=0.1,
                               nms_iou=0.5, merge_iou=0.9, max_detections=5)


# --------------------------------------------------------------------------- SAM 2 preprocessing


def test_sam2_preprocess_normalises_with_imagenet_statistics():
    color = np.array([200, 100, 50], dtype=np.uint8)
    image = np.broadcast_to(color, (37, 53, 3)).copy()
    out = sam2_preprocess(image, 64)
    assert out.shape == (3, 64, 64) and out.dtype == np.float32
    expected = (color / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    assert out.reshape(3, -1).mean(axis=1) == pytest.approx(expected, abs=1e-5)
    assert out.reshape(3, -1).std(axis=1) == pytest.approx([0, 0, 0], abs=1e-5)


def test_sam2_preprocess_resizes_without_keeping_aspect_ratio_like_torch_antialiased_bilinear():
    rng = np.random.default_rng(0)
    # A smooth image (random low-frequency field) so resampling differences stay small.
    small = rng.uniform(0, 255, size=(6, 9, 3))
    image = np.asarray(F.interpolate(torch.tensor(small).permute(2, 0, 1)[None], size=(90, 150), mode="bicubic",
                                     align_corners=False)[0].permute(1, 2, 0).clamp(0, 255).round(), dtype=np.uint8)
    ours = sam2_preprocess(image, 64)
    reference = F.interpolate(torch.tensor(image, dtype=torch.float32).permute(2, 0, 1)[None], size=(64, 64),
                              mode="bilinear", antialias=True, align_corners=False)[0] / 255.0
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    reference = ((reference - mean) / std).numpy()
    # The torchvision processor resizes with torch's antialiased bilinear; PIL's filter differs in rounding only.
    assert np.abs(ours - reference).mean() < 0.02
    assert np.abs(ours - reference).max() < 0.2


def test_sam2_preprocess_rejects_non_rgb_uint8():
    with pytest.raises(ValueError, match="uint8 RGB"):
        sam2_preprocess(np.zeros((10, 10), dtype=np.uint8), 32)


def test_boxes_scale_per_axis_to_the_sam_square():
    scaled = scale_boxes_to_sam(np.array([[10, 20, 110, 220]]), height=400, width=200, size=1024)
    assert scaled[0] == pytest.approx([51.2, 51.2, 563.2, 563.2])


def test_upsample_mask_logits_matches_processor_post_processing():
    logits = torch.full((2, 8, 8), -5.0)
    logits[0, 2:6, 2:6] = 5.0
    masks = upsample_mask_logits(logits, 32, 48)
    assert masks.shape == (2, 32, 48) and masks.dtype == bool
    reference = F.interpolate(logits[:, None], size=(32, 48), mode="bilinear", align_corners=False)[:, 0] > 0
    assert np.array_equal(masks, reference.numpy())
    assert not masks[1].any()


# --------------------------------------------------------------------------- depth convention


def test_normalize_depth_flips_inverse_depth_so_zero_is_nearest():
    inverse = np.array([[10.0, 5.0], [2.5, 1.0]])  # 10 = nearest (largest disparity)
    depth = normalize_depth(inverse)
    assert depth[0, 0] == 0.0 and depth[1, 1] == 1.0
    assert depth[0, 1] < depth[1, 0]  # ordering kept: 5 is nearer than 2.5


@pytest.mark.parametrize("values", [np.full((3, 3), 7.0), np.full((2, 2), np.nan)])
def test_normalize_depth_without_information_is_all_zero(values):
    assert np.array_equal(normalize_depth(values), np.zeros_like(values, dtype=np.float32))


def test_depth_stats_inside_mask():
    depth = np.array([[0.0, 0.2], [0.4, 1.0]], dtype=np.float32)
    mask = np.array([[True, True], [False, False]])
    assert depth_stats(depth, mask) == pytest.approx((0.1, 0.1))
    assert depth_stats(depth, np.zeros((2, 2), bool)) is None


# --------------------------------------------------------------------------- vocabulary


def test_default_vocabulary_has_coco_and_household_labels_without_duplicates():
    labels = default_vocabulary()
    assert {"person", "knife", "cutting board", "mug", "dining table"} <= set(labels)
    assert len(labels) == len(set(labels)) and all(label == label.strip().lower() for label in labels)


def test_parse_vocabulary_skips_comments_blanks_and_duplicates():
    assert parse_vocabulary("# header\nCup\n\n  red   mug  # trailing\ncup\n") == ["cup", "red mug"]


@pytest.mark.parametrize(("query", "nouns"), [
    ("the thing I would cut the bread with", ["bread"]),
    ("Which of the knives is closest to the red mugs on the shelves?", ["knife", "mug", "shelf"]),
    ("the dog that runs away first", ["dog"]),
    ("it", []),
])
def test_nouns_from_query(query, nouns):
    assert nouns_from_query(query) == nouns


def test_build_vocabulary_orders_and_extends(tmp_path):
    extra = tmp_path / "labels.txt"
    extra.write_text("robot arm\nmug\n", encoding="utf-8")
    labels = build_vocabulary(use_default=False, vocabulary_file=extra, extra_labels=["Gripper"],
                              queries=["grab the screwdriver near the gripper"])
    assert labels == ["robot arm", "mug", "gripper", "grab", "screwdriver"]


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(("overrides", "message"), [
    ({"device": "tpu"}, "device must be one of"),
    ({"dtype": "int8"}, "dtype must be one of"),
    ({"score_threshold": 1.5}, "score_threshold must be a number in"),
    ({"frame_stride": 0}, "frame_stride must be an integer >= 1"),
    ({"max_frames": 0}, "max_frames must be a positive integer"),
    ({"prompt_template": "a photo"}, "prompt_template must contain"),
    ({"vocabulary_file": "/nonexistent/labels.txt"}, "does not exist"),
    ({"detector_model": ""}, "detector_model must be"),
])
def test_config_rejects_bad_values_with_a_fix(overrides, message):
    with pytest.raises(ValueError, match=message):
        PerceptionConfig(**overrides)


def test_config_round_trips_through_yaml(tmp_path):
    config = PerceptionConfig(device="cpu", extra_labels=("robot",), depth_model="none", max_frames=10)
    assert config.depth_model is None
    loaded = PerceptionConfig.load(config.save(tmp_path / "c.yaml"))
    assert loaded == config
    with pytest.raises(ValueError, match="unknown perception config keys"):
        PerceptionConfig.from_dict({"detector": "x"})
    assert config.with_overrides(frame_stride=3, device=None).frame_stride == 3
