"""DAVIS region (J) and boundary (F) measures for one frame, as the video benchmarks score them.

``j_score`` follows ``db_eval_iou`` and ``f_score`` follows ``db_eval_boundary`` / ``f_measure``
of the DAVIS 2017 evaluation kit (davisvideochallenge/davis2017-evaluation, ``davis2017/metrics.py``),
which JiTBench / RVTBench and ReVOS report. The conventions reproduced exactly:

- J: intersection over union of the foreground, void pixels excluded from both; both empty -> 1.
- F: boundaries from ``seg2bmap`` (1-pixel boundaries offset half a pixel towards the origin),
  tolerance ``bound_pix = bound_th`` if ``bound_th >= 1`` else ``ceil(bound_th * diagonal)``,
  dilation by skimage's ``disk(bound_pix)`` with ``cv2.dilate``; precision / recall with the kit's
  empty-boundary rules (both empty -> P = R = 1; prediction empty -> P = 1, R = 0; ground truth
  empty -> P = 0, R = 1); F = 2PR / (P + R), or 0 when P + R = 0.

Departures (none change a same-size score): the disk is built here with numpy (identical to
skimage's ``disk``) so scikit-image is not a dependency; ``seg2bmap``'s resampling branch (an output
grid smaller than the mask) follows the original MATLAB ``seg2bmap.m`` formula
``j = floor(y * height / h)``, because the Python port in the kit has typos there (``+`` for ``*``,
``h`` for ``w``) that index out of range; its size check is written out instead of the kit's
``width > w | height > h | ...``, which Python's operator precedence makes a no-op.
The paper itself only names J, F and J&F; it gives no code.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_BOUND_TH = 0.008


def as_mask(array: np.ndarray, name: str = "mask") -> np.ndarray:
    """A (H, W) bool view of ``array`` (nonzero = foreground), or ValueError naming ``name``."""
    mask = np.asarray(array)
    if mask.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) array, got shape {mask.shape}")
    if mask.dtype != bool:
        if not (np.issubdtype(mask.dtype, np.number)):
            raise ValueError(f"{name} must be a bool or numeric array, got dtype {mask.dtype}")
        mask = mask != 0
    return mask


def _pair(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    pred_mask, gt_mask = as_mask(pred, "pred"), as_mask(gt, "gt")
    if pred_mask.shape != gt_mask.shape:
        raise ValueError(f"pred and gt shapes differ: {pred_mask.shape} vs {gt_mask.shape}")
    void_mask = None
    if void is not None:
        void_mask = as_mask(void, "void")
        if void_mask.shape != gt_mask.shape:
            raise ValueError(f"void shape {void_mask.shape} differs from gt shape {gt_mask.shape}")
    return pred_mask, gt_mask, void_mask


def j_score(pred: np.ndarray, gt: np.ndarray, *, void: np.ndarray | None = None) -> float:
    """Region similarity J (DAVIS ``db_eval_iou``): |pred & gt| / |pred | gt|, 1.0 when both are empty.

    ``void`` marks pixels that count for neither (DAVIS void label). Masks are (H, W) bool or
    numeric arrays (nonzero = foreground, as the kit's ``astype(bool)``).
    """
    pred_mask, gt_mask, void_mask = _pair(pred, gt, void)
    keep = ~void_mask if void_mask is not None else np.ones_like(gt_mask)
    inter = int(np.count_nonzero(pred_mask & gt_mask & keep))
    union = int(np.count_nonzero((pred_mask | gt_mask) & keep))
    if union == 0:
        return 1.0
    return inter / union


def boundary_tolerance_px(shape: tuple[int, int], bound_th: float = DEFAULT_BOUND_TH) -> float:
    """DAVIS boundary tolerance in pixels: ``bound_th`` itself if >= 1, else ceil(bound_th * image diagonal)."""
    if not math.isfinite(bound_th) or bound_th < 0:
        raise ValueError(f"bound_th must be a finite number >= 0 (a fraction of the diagonal, or pixels if >= 1), "
                         f"got {bound_th!r}")
    if bound_th >= 1:
        return float(bound_th)
    return float(np.ceil(bound_th * np.linalg.norm(shape)))


def disk(radius: float) -> np.ndarray:
    """skimage.morphology.disk(radius) as uint8: offsets on ``arange(-r, r + 1)`` with x^2 + y^2 <= r^2."""
    offsets = np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(offsets, offsets)
    return (xx**2 + yy**2 <= radius**2).astype(np.uint8)


def seg2bmap(seg: np.ndarray, width: int | None = None, height: int | None = None) -> np.ndarray:
    """Binary 1-pixel boundary map of a segmentation (DAVIS / Berkeley ``seg2bmap``).

    A pixel is boundary when it differs from its east, south or south-east neighbour, so
    boundaries sit half a pixel towards the origin from the true contour; the last row and
    column compare only along the edge, and the bottom-right pixel is never boundary.
    With ``width``/``height`` smaller than the mask (same aspect ratio within 0.01), boundary
    pixels are mapped onto that coarser grid (MATLAB ``seg2bmap.m`` formula; see module docstring).
    """
    seg = as_mask(seg, "seg")
    h, w = seg.shape
    width = w if width is None else int(width)
    height = h if height is None else int(height)
    if width > w or height > h or width < 1 or height < 1 or abs(width / height - w / h) > 0.01:
        raise ValueError(f"cannot convert a {w}x{h} segmentation to a {width}x{height} boundary map")
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    boundary = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    boundary[-1, :] = seg[-1, :] ^ east[-1, :]
    boundary[:, -1] = seg[:, -1] ^ south[:, -1]
    boundary[-1, -1] = False
    if (width, height) == (w, h):
        return boundary
    bmap = np.zeros((height, width), dtype=bool)
    ys, xs = np.nonzero(boundary)
    bmap[(ys * height) // h, (xs * width) // w] = True
    return bmap


def boundary_precision_recall(pred: np.ndarray, gt: np.ndarray, bound_th: float = DEFAULT_BOUND_TH, *,
                              void: np.ndarray | None = None) -> tuple[float, float]:
    """Boundary precision and recall with the DAVIS tolerance and empty-boundary conventions."""
    import cv2

    pred_mask, gt_mask, void_mask = _pair(pred, gt, void)
    if void_mask is not None:
        pred_mask = pred_mask & ~void_mask
        gt_mask = gt_mask & ~void_mask
    bound_pix = boundary_tolerance_px(pred_mask.shape, bound_th)
    pred_boundary = seg2bmap(pred_mask)
    gt_boundary = seg2bmap(gt_mask)
    n_pred = int(np.count_nonzero(pred_boundary))
    n_gt = int(np.count_nonzero(gt_boundary))
    if n_pred == 0 and n_gt == 0:
        return 1.0, 1.0
    if n_pred == 0:
        return 1.0, 0.0
    if n_gt == 0:
        return 0.0, 1.0
    structure = disk(bound_pix)
    pred_dilated = cv2.dilate(pred_boundary.astype(np.uint8), structure) > 0
    gt_dilated = cv2.dilate(gt_boundary.astype(np.uint8), structure) > 0
    precision = np.count_nonzero(pred_boundary & gt_dilated) / n_pred
    recall = np.count_nonzero(gt_boundary & pred_dilated) / n_gt
    return float(precision), float(recall)


def f_score(pred: np.ndarray, gt: np.ndarray, bound_th: float = DEFAULT_BOUND_TH, *,
            void: np.ndarray | None = None) -> float:
    """Boundary F-measure (DAVIS ``db_eval_boundary``): 2PR / (P + R), 0 when P + R = 0.

    Note the kit's conventions: an empty prediction against a non-empty ground truth scores 0,
    both empty score 1, and a mask covering the whole image has no boundary at all (so a full
    prediction against an empty ground truth scores F = 1 while J = 0).
    """
    precision, recall = boundary_precision_recall(pred, gt, bound_th, void=void)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)
