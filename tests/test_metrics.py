"""Metrics: DAVIS J / F, LISA gIoU / cIoU and the grouped accumulator, on hand-computed cases.

The geometry behind the F expectations: ``seg2bmap`` of the filled rectangle rows r0..r1,
cols c0..c1 is the 1-pixel outline of rows r0-1..r1, cols c0-1..c1 (boundaries sit half a
pixel towards the origin). For the 10x10 square SQUARE below that outline has 40 pixels.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastreasonseg.metrics import (
    MetricAccumulator,
    boundary_precision_recall,
    boundary_tolerance_px,
    f_score,
    intersection_union,
    iou_scores,
    j_score,
    seg2bmap,
)
from fastreasonseg.metrics.davis import disk

H = W = 20


def rect(r0: int, r1: int, c0: int, c1: int, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    """Filled rectangle, rows r0..r1 and cols c0..c1 inclusive."""
    mask = np.zeros(shape, dtype=bool)
    mask[r0 : r1 + 1, c0 : c1 + 1] = True
    return mask


def pixels(shape: tuple[int, int], coords: list[tuple[int, int]]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for r, c in coords:
        mask[r, c] = True
    return mask


EMPTY = np.zeros((H, W), dtype=bool)
FULL = np.ones((H, W), dtype=bool)
SQUARE = rect(5, 14, 5, 14)
LINE = rect(10, 10, 5, 14)  # 1 pixel thick: J collapses under a 1-pixel shift, F does not


def shift(mask: np.ndarray, rows: int = 0, cols: int = 0) -> np.ndarray:
    return np.roll(mask, (rows, cols), axis=(0, 1))


# --------------------------------------------------------------------------- seg2bmap


@pytest.mark.parametrize(
    ("seg", "expected"),
    [
        (np.zeros((4, 4), bool), np.zeros((4, 4), bool)),
        # a whole-image mask has no boundary at all (edges compare only along the border)
        (np.ones((4, 4), bool), np.zeros((4, 4), bool)),
        (pixels((4, 4), [(1, 1)]), pixels((4, 4), [(0, 0), (0, 1), (1, 0), (1, 1)])),
        # the bottom-right pixel itself is never boundary
        (pixels((4, 4), [(3, 3)]), pixels((4, 4), [(2, 2), (2, 3), (3, 2)])),
        (rect(1, 2, 1, 2, (5, 5)), rect(0, 2, 0, 2, (5, 5)) & ~rect(1, 1, 1, 1, (5, 5))),
    ],
    ids=["empty", "full", "single-pixel", "bottom-right-pixel", "2x2-square"],
)
def test_seg2bmap_hand_computed(seg: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_array_equal(seg2bmap(seg), expected)


def test_seg2bmap_rectangle_is_outline_offset_towards_origin() -> None:
    outline = rect(4, 14, 4, 14) & ~rect(5, 13, 5, 13)
    np.testing.assert_array_equal(seg2bmap(SQUARE), outline)
    assert outline.sum() == 40


def test_seg2bmap_coarser_grid_maps_pixels_by_scale() -> None:
    seg = pixels((8, 8), [(4, 4)])  # boundary (3,3), (3,4), (4,3), (4,4) -> halved
    np.testing.assert_array_equal(seg2bmap(seg, width=4, height=4), pixels((4, 4), [(1, 1), (1, 2), (2, 1), (2, 2)]))


@pytest.mark.parametrize(("width", "height"), [(16, 16), (8, 4), (0, 0)])
def test_seg2bmap_rejects_impossible_grid(width: int, height: int) -> None:
    with pytest.raises(ValueError, match="cannot convert"):
        seg2bmap(np.zeros((8, 8), bool), width=width, height=height)


# --------------------------------------------------------------------------- J


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        (EMPTY, EMPTY, 1.0),
        (EMPTY, SQUARE, 0.0),
        (SQUARE, EMPTY, 0.0),
        (SQUARE, SQUARE, 1.0),
        (FULL, FULL, 1.0),
        (rect(0, 1, 0, 2), rect(0, 1, 0, 1), 4 / 6),
        (shift(SQUARE, cols=2), SQUARE, 80 / 120),
        (shift(LINE, rows=1), LINE, 0.0),
        (SQUARE.astype(np.uint8) * 255, SQUARE, 1.0),  # nonzero is foreground, as DAVIS astype(bool)
    ],
    ids=["both-empty", "pred-empty", "gt-empty", "same", "full", "2x3-vs-2x2", "square-shift-2", "thin-line-shift",
         "uint8-0-255"],
)
def test_j_score_table(pred: np.ndarray, gt: np.ndarray, expected: float) -> None:
    assert j_score(pred, gt) == pytest.approx(expected)


def test_j_score_void_pixels_count_for_neither() -> None:
    pred, gt = rect(0, 1, 0, 2), rect(0, 1, 0, 1)
    assert j_score(pred, gt, void=rect(0, 1, 2, 2)) == 1.0
    assert j_score(pred, gt, void=np.ones((H, W), bool)) == 1.0  # everything void: empty union


@pytest.mark.parametrize(
    ("pred", "gt", "message"),
    [
        (np.zeros((4, 4)), np.zeros((4, 5)), "shapes differ"),
        (np.zeros((4, 4, 1)), np.zeros((4, 4, 1)), "2-D"),
        (np.array([["a"]]), np.array([["a"]]), "dtype"),
    ],
)
def test_j_score_rejects_bad_input(pred: np.ndarray, gt: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        j_score(pred, gt)


# --------------------------------------------------------------------------- F


@pytest.mark.parametrize(
    ("pred", "gt", "bound_th", "expected"),
    [
        (SQUARE, SQUARE, 0.008, 1.0),
        (EMPTY, EMPTY, 0.008, 1.0),
        (EMPTY, SQUARE, 0.008, 0.0),  # P = 1, R = 0
        (SQUARE, EMPTY, 0.008, 0.0),  # P = 0, R = 1
        (FULL, EMPTY, 0.008, 1.0),  # DAVIS quirk: a full mask has no boundary, so both are empty
        (shift(SQUARE, cols=1), SQUARE, 0, 0.5),  # exact match: 20 of 40 outline pixels coincide
        (shift(SQUARE, cols=1), SQUARE, 1, 1.0),
        (shift(SQUARE, cols=2), SQUARE, 1, 0.55),  # 22 of 40 within the radius-1 cross, both ways
        (shift(SQUARE, cols=2), SQUARE, 0.008, 0.55),  # ceil(0.008 * 28.3) = 1 pixel on 20x20
        (shift(SQUARE, cols=2), SQUARE, 2, 1.0),
        (shift(LINE, rows=1), LINE, 1, 1.0),  # J = 0 here: F forgives a 1-pixel slip on thin shapes
        (shift(LINE, rows=1), LINE, 0, 0.5),  # 11 of the 22 outline pixels coincide
    ],
    ids=["same", "both-empty", "pred-empty", "gt-empty", "full-vs-empty", "shift1-exact", "shift1-tol1",
         "shift2-tol1", "shift2-default", "shift2-tol2", "line-tol1", "line-exact"],
)
def test_f_score_table(pred: np.ndarray, gt: np.ndarray, bound_th: float, expected: float) -> None:
    assert f_score(pred, gt, bound_th) == pytest.approx(expected)


def test_f_differs_from_j_on_thin_shapes() -> None:
    pred = shift(LINE, rows=1)
    assert j_score(pred, LINE) == 0.0
    assert f_score(pred, LINE) == 1.0


def test_boundary_precision_recall_asymmetric() -> None:
    # gt has an extra 2x2 blob far from the square: its 8 outline pixels are unmatched
    gt = SQUARE | rect(1, 2, 17, 18)
    precision, recall = boundary_precision_recall(SQUARE, gt, 1)
    assert (precision, recall) == pytest.approx((1.0, 40 / 48))
    assert f_score(SQUARE, gt, 1) == pytest.approx(2 * recall / (1 + recall))


def test_f_score_void_removes_boundary() -> None:
    # the far blob is void, so it neither adds boundary nor costs recall
    gt = SQUARE | rect(1, 2, 17, 18)
    assert f_score(SQUARE, gt, 1, void=rect(0, 3, 16, 19)) == 1.0


@pytest.mark.parametrize(
    ("shape", "bound_th", "expected"),
    [((480, 854), 0.008, 8.0), ((20, 20), 0.008, 1.0), ((200, 200), 0.008, 3.0), ((100, 100), 3, 3.0),
     ((100, 100), 0, 0.0), ((1080, 1920), 0.008, 18.0)],
)
def test_boundary_tolerance_px(shape: tuple[int, int], bound_th: float, expected: float) -> None:
    assert boundary_tolerance_px(shape, bound_th) == expected


@pytest.mark.parametrize("bound_th", [-0.1, math.nan, math.inf])
def test_boundary_tolerance_rejects_bad_threshold(bound_th: float) -> None:
    with pytest.raises(ValueError, match="bound_th"):
        f_score(SQUARE, SQUARE, bound_th)


def test_disk_matches_euclidean_ball() -> None:
    np.testing.assert_array_equal(disk(0), [[1]])
    np.testing.assert_array_equal(disk(1), [[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    assert disk(2).sum() == 13 and disk(3).sum() == 29


@pytest.mark.parametrize("radius", [1, 2, 3])
def test_boundary_matching_equals_brute_force_distance(radius: int) -> None:
    """P and R equal the fraction of boundary pixels within Euclidean ``radius`` of the other boundary."""
    rng = np.random.default_rng(radius)
    for _ in range(5):
        pred = np.zeros((24, 28), bool)
        gt = np.zeros((24, 28), bool)
        for mask in (pred, gt):
            for _ in range(3):
                r, c = rng.integers(0, 20, 2)
                mask[r : r + rng.integers(2, 9), c : c + rng.integers(2, 9)] = True
        pb, gb = np.argwhere(seg2bmap(pred)), np.argwhere(seg2bmap(gt))
        dist = np.sqrt(((pb[:, None, :] - gb[None, :, :]) ** 2).sum(-1))
        expected_p = float((dist.min(1) <= radius).mean())
        expected_r = float((dist.min(0) <= radius).mean())
        assert boundary_precision_recall(pred, gt, radius) == pytest.approx((expected_p, expected_r))


# --------------------------------------------------------------------------- gIoU / cIoU


def _one_row(*values: int) -> np.ndarray:
    return np.array([values], dtype=bool)


@pytest.mark.parametrize(
    ("preds", "gts", "ignores", "giou", "ciou"),
    [
        ([SQUARE], [SQUARE], None, 1.0, 1.0),
        ([EMPTY], [EMPTY], None, 1.0, 0.0),  # LISA: empty union scores 1 in gIoU; total union 0 -> cIoU 0
        ([EMPTY, SQUARE], [SQUARE, SQUARE], None, 0.5, 0.5),
        # inter/union 1/2 and 1/4: gIoU averages ratios, cIoU pools pixels
        ([_one_row(1, 1, 0, 0), _one_row(1, 1, 1, 1)], [_one_row(1, 0, 0, 0), _one_row(1, 0, 0, 0)], None,
         0.375, 2 / 6),
        ([EMPTY, _one_row(1, 1, 1, 1)], [EMPTY, _one_row(1, 0, 0, 0)], None, 0.625, 0.25),
        # a false positive inside the ignore region costs nothing
        ([_one_row(1, 1, 1, 0)], [_one_row(1, 1, 0, 0)], [_one_row(0, 0, 1, 1)], 1.0, 1.0),
        # gt pixels under ignore are not missed either
        ([_one_row(1, 0, 0, 0)], [_one_row(1, 1, 0, 0)], [_one_row(0, 1, 0, 0)], 1.0, 1.0),
        ([SQUARE], [SQUARE], [np.ones((H, W), bool)], 1.0, 0.0),  # all ignored
        ([SQUARE, SQUARE], [SQUARE, SQUARE], [None, rect(5, 14, 5, 9)], 1.0, 1.0),
    ],
    ids=["same", "both-empty", "one-miss", "ratio-vs-pooled", "empty-plus-partial", "ignored-fp", "ignored-fn",
         "all-ignored", "per-sample-none-ignore"],
)
def test_iou_scores_table(preds, gts, ignores, giou: float, ciou: float) -> None:
    scores = iou_scores(preds, gts, ignores)
    assert scores == pytest.approx({"giou": giou, "ciou": ciou})


def test_intersection_union_counts() -> None:
    assert intersection_union(shift(SQUARE, cols=2), SQUARE) == (80, 120)
    assert intersection_union(shift(SQUARE, cols=2), SQUARE, rect(0, 19, 15, 19)) == (80, 100)


@pytest.mark.parametrize(
    ("preds", "gts", "ignores", "message"),
    [
        ([SQUARE], [SQUARE, SQUARE], None, "1 predictions but 2"),
        ([], [], None, "at least one"),
        ([SQUARE, np.zeros((3, 3), bool)], [SQUARE, SQUARE], None, r"preds\[1\] and gts\[1\] shapes differ"),
        ([SQUARE], [SQUARE.astype(np.uint8) * 255], None, "ignores="),  # a 0/255 gt is ambiguous: refuse
        ([SQUARE], [SQUARE], [None, None], "2 ignore masks for 1"),
        ([SQUARE], [SQUARE], [np.ones((3, 3), bool)], r"ignores\[0\] shape"),
    ],
    ids=["length", "empty", "shape", "gt-255", "ignore-length", "ignore-shape"],
)
def test_iou_scores_rejects_bad_input(preds, gts, ignores, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        iou_scores(preds, gts, ignores)


def test_iou_scores_accepts_lisa_ignore_label_after_split() -> None:
    labels = np.array([[1, 1, 255, 0]], dtype=np.uint8)
    pred = _one_row(1, 1, 1, 0)
    assert iou_scores([pred], [labels == 1], [labels == 255]) == {"giou": 1.0, "ciou": 1.0}


# --------------------------------------------------------------------------- accumulator


def test_accumulator_groups_and_overall() -> None:
    acc = MetricAccumulator(bound_th=1)
    acc.update(SQUARE, SQUARE, keys={"category": "spatial", "level": "L1"})  # J 1, F 1, IoU 1
    acc.update(shift(SQUARE, cols=2), SQUARE, keys={"category": "spatial", "level": "L2"})  # J 2/3, F .55
    acc.update(EMPTY, SQUARE, keys={"category": "temporal", "level": "L2"})  # J 0, F 0
    result = acc.compute()
    assert set(result) == {"overall", "category", "level"}
    overall = result["overall"]
    assert overall["count"] == 3 and overall["frames"] == 3
    assert overall["J"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert overall["F"] == pytest.approx((1 + 0.55 + 0) / 3)
    assert overall["J&F"] == pytest.approx((overall["J"] + overall["F"]) / 2)
    assert overall["gIoU"] == pytest.approx(overall["J"])  # no ignore, no empty union: same as J
    assert overall["cIoU"] == pytest.approx((100 + 80 + 0) / (100 + 120 + 100))
    spatial = result["category"]["spatial"]
    assert spatial["count"] == 2
    assert spatial["J"] == pytest.approx((1 + 2 / 3) / 2)
    assert spatial["J&F"] == pytest.approx(((1 + 2 / 3) / 2 + (1 + 0.55) / 2) / 2)
    assert result["category"]["temporal"]["J"] == 0.0
    assert result["level"]["L2"]["F"] == pytest.approx(0.55 / 2)
    assert list(result["level"]) == ["L1", "L2"]


def test_accumulator_video_averages_frames_then_samples() -> None:
    acc = MetricAccumulator(bound_th=1)
    # video of two frames: J 1.0 and 0.5 -> sample J 0.75; a one-frame sample with J 0.
    half = rect(5, 14, 5, 9)
    video = acc.update([SQUARE, half], [SQUARE, SQUARE])
    assert video.frames == 2 and video.j == pytest.approx(0.75)
    acc.update([EMPTY], [SQUARE])
    overall = acc.compute()["overall"]
    # mean over samples (0.75 + 0) / 2, not over the three frames (1 + 0.5 + 0) / 3
    assert overall["J"] == pytest.approx(0.375)
    assert overall["frames"] == 3
    assert overall["cIoU"] == pytest.approx((100 + 50 + 0) / (100 + 100 + 100))


def test_accumulator_accepts_stacked_video_array() -> None:
    stacked, listed = MetricAccumulator(), MetricAccumulator()
    frames = np.stack([SQUARE, shift(SQUARE, cols=2)])
    a = stacked.update(frames, np.stack([SQUARE, SQUARE]))
    b = listed.update(list(frames), [SQUARE, SQUARE])
    assert (a.j, a.f, a.giou) == pytest.approx((b.j, b.f, b.giou))


def test_accumulator_ignore_per_frame() -> None:
    acc = MetricAccumulator()
    score = acc.update([_one_row(1, 1, 1, 0)], [_one_row(1, 1, 0, 0)], ignore=[_one_row(0, 0, 1, 1)])
    assert score.giou == 1.0 and score.j == 1.0 and (score.intersection, score.union) == (2, 2)


def test_accumulator_without_boundary() -> None:
    acc = MetricAccumulator(compute_boundary=False)
    acc.update(SQUARE, SQUARE)
    overall = acc.compute()["overall"]
    assert overall["J"] == 1.0 and overall["F"] is None and overall["J&F"] is None


def test_accumulator_empty_and_reset() -> None:
    acc = MetricAccumulator()
    assert acc.compute() == {"overall": {"count": 0, "frames": 0, "J": None, "F": None, "J&F": None,
                                         "gIoU": None, "cIoU": None}}
    acc.update(SQUARE, SQUARE, keys={"length": "short"})
    assert len(acc) == 1 and "length" in acc.compute()
    acc.reset()
    assert len(acc) == 0 and acc.compute()["overall"]["count"] == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pred": [SQUARE], "gt": [SQUARE, SQUARE]}, "1 frames but gt has 2"),
        ({"pred": SQUARE, "gt": SQUARE, "keys": {"overall": "x"}}, "overall"),
        ({"pred": SQUARE, "gt": SQUARE, "keys": {"level": 2}}, r"keys\['level'\] must be a string"),
        ({"pred": SQUARE, "gt": SQUARE, "ignore": [SQUARE, SQUARE]}, "ignore has 2 frames"),
        ({"pred": np.zeros((1, 1, 1, 1)), "gt": SQUARE}, "pred must be"),
        ({"pred": [], "gt": []}, "at least one"),
        ({"pred": None, "gt": SQUARE}, "both pred and gt"),
    ],
    ids=["frame-count", "reserved-key", "non-str-value", "ignore-count", "4d", "no-frames", "none"],
)
def test_accumulator_rejects_bad_update(kwargs: dict, message: str) -> None:
    acc = MetricAccumulator()
    pred, gt = kwargs.pop("pred"), kwargs.pop("gt")
    with pytest.raises(ValueError, match=message):
        acc.update(pred, gt, **kwargs)
    assert len(acc) == 0  # a rejected sample leaves no trace


@pytest.mark.parametrize("bound_th", [-1.0, math.nan])
def test_accumulator_rejects_bad_threshold(bound_th: float) -> None:
    with pytest.raises(ValueError, match="bound_th"):
        MetricAccumulator(bound_th)
