"""The one answer scorer: hand-computed IoUs, ground truth from items, and evaluate_reasoner's report."""

from __future__ import annotations

import numpy as np
import pytest

from fastreasonseg.distill.testing import tiny_items, tiny_twin
from fastreasonseg.eval.scoring import (
    AnswerScore,
    answer_masks,
    evaluate_reasoner,
    score_answer,
    score_masks,
    target_from_item,
)
from fastreasonseg.twin.core import DigitalTwin, Frame, Source, make_object


def _mask(h: int, w: int, box: tuple[int, int, int, int]) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    x1, y1, x2, y2 = box
    m[y1:y2, x1:x2] = True
    return m


@pytest.mark.parametrize(("pred_box", "gt_box", "iou"), [
    ((0, 0, 4, 4), (0, 0, 4, 4), 1.0),            # identical
    ((0, 0, 4, 4), (4, 4, 8, 8), 0.0),            # disjoint
    ((0, 0, 4, 4), (2, 0, 6, 4), 8 / 24),         # half overlap: 8 px shared of 24
    ((0, 0, 2, 2), (0, 0, 4, 4), 4 / 16),         # prediction inside the target
    ((0, 0, 0, 0), (0, 0, 4, 4), 0.0),            # empty prediction
    ((0, 0, 0, 0), (0, 0, 0, 0), 1.0),            # both empty: LISA counts 1.0
])
def test_score_masks_single_frame(pred_box, gt_box, iou):
    score = score_masks([_mask(8, 8, pred_box)], [_mask(8, 8, gt_box)])
    assert score.iou == pytest.approx(iou)
    assert score.frames == 1


def test_score_masks_video_is_mean_of_frame_ious_and_totals_pixels():
    pred = [_mask(8, 8, (0, 0, 4, 4)), _mask(8, 8, (0, 0, 4, 4))]
    gt = [_mask(8, 8, (0, 0, 4, 4)), _mask(8, 8, (4, 4, 8, 8))]
    score = score_masks(pred, gt)
    assert score.iou == pytest.approx(0.5)
    assert (score.intersection, score.union) == (16, 16 + 32)


def test_score_masks_rejects_mismatched_frames():
    with pytest.raises(ValueError, match="frames"):
        score_masks([_mask(8, 8, (0, 0, 1, 1))], [])


@pytest.mark.parametrize(("threshold", "passes"), [(0.5, False), (0.3, True), (1 / 3, False)])
def test_passes_is_strictly_greater(threshold, passes):
    assert AnswerScore(iou=1 / 3, intersection=1, union=3, frames=1).passes(threshold) is passes


def test_score_answer_uses_union_of_answered_masks():
    twin = tiny_twin()
    gt = [twin.union_mask([3], 0)]
    assert score_answer([3], twin, gt).iou == 1.0
    assert score_answer([4], twin, gt).iou == 0.0
    both = score_answer([3, 4], twin, gt)  # cup 3 is 15x15, cup 4 is 15x13 and disjoint
    assert both.iou == pytest.approx(225 / (225 + 195))
    assert score_answer(None, twin, gt).iou == 0.0
    assert score_answer([99], twin, gt).iou == 0.0  # an id that is not in the twin predicts nothing


def test_answer_masks_video_skips_absent_ids():
    objects0 = (make_object(1, "ball", 0.9, [0, 0, 4, 4]),)
    objects1 = (make_object(2, "dog", 0.9, [4, 4, 8, 8]),)
    twin = DigitalTwin(source=Source(kind="video", width=8, height=8, num_frames=2, fps=1.0),
                       frames=(Frame(0, 0.0, objects0), Frame(1, 1.0, objects1)))
    masks = answer_masks(twin, [1])
    assert [int(m.sum()) for m in masks] == [16, 0]


def _noisy_twin_with_shifted_cup() -> DigitalTwin:
    clean = tiny_twin()
    shifted = [make_object(3, "cup", 0.93, [8, 5, 23, 20]) if o.id == 3 else o for o in clean.frames[0].objects]
    return DigitalTwin(source=clean.source, frames=(Frame(0, 0.0, tuple(shifted)),))


def test_target_from_item_uses_gt_masks_from_meta():
    # The model sees a noisy twin in which cup 3 is shifted by 3 px; the ground truth is the clean mask.
    item = {**tiny_items()[0], "twin": _noisy_twin_with_shifted_cup().to_dict()}
    target = target_from_item(item)
    assert target.score([3]).iou == pytest.approx((12 * 15) / (18 * 15))
    assert target.keys == {"category": "spatial", "level": "L2", "holdout": "none"}


def test_target_from_item_falls_back_to_clean_twin_then_twin():
    item = tiny_items()[0]
    meta = {k: v for k, v in item["meta"].items() if k != "gt_masks"}
    noisy = _noisy_twin_with_shifted_cup().to_dict()
    with_clean = {**item, "twin": noisy, "meta": {**meta, "clean_twin": tiny_twin().to_dict()}}
    assert target_from_item(with_clean).score([3]).iou == pytest.approx(12 / 18)
    only_twin = {**item, "twin": noisy, "meta": meta}
    assert target_from_item(only_twin).score([3]).iou == 1.0


def test_gt_masks_frames_not_listed_are_empty():
    item = tiny_items()[0]
    target = target_from_item({**item, "meta": {"gt_masks": []}})
    assert target.score(None).iou == 1.0  # nothing to find, nothing predicted
    assert target.score([3]).iou == 0.0


def test_evaluate_reasoner_with_teacher_replay():
    from fastreasonseg.distill.teacher import ProgrammaticTeacher

    items = tiny_items()
    wrong = {**items[1], "id": "wrong", "teacher": items[0]["teacher"]}  # answers cup 3 to the knife query
    broken = {**items[1], "id": "broken", "teacher": "<reason>no answer"}
    records: list = []
    report = evaluate_reasoner([*items, wrong, broken], ProgrammaticTeacher(), records=records)
    assert report["count"] == 4
    assert report["metrics"]["overall"]["gIoU"] == pytest.approx(0.5)
    assert report["parse_failure_rate"] == pytest.approx(0.25)
    assert report["format_ok_rate"] == pytest.approx(0.75)
    assert set(report["metrics"]["category_level"]) == {"spatial/L2", "semantic/L1"}
    assert report["metrics"]["category"]["semantic"]["gIoU"] == pytest.approx(1 / 3)
    assert [r.iou for r in records] == [1.0, 1.0, 0.0, 0.0]
