"""Small numeric pieces of the perception pipeline, in numpy/PIL/torch without torchvision.

- ``sam2_preprocess``: what transformers' ``Sam2ImageProcessor`` does (resize to the model's
  square input size ignoring aspect ratio, bilinear with antialiasing; scale to [0, 1];
  normalise with ImageNet mean/std). That processor is built on torchvision, which has no CPU
  build here, so the three steps are re-implemented with PIL and tested against the
  documented behaviour (``tests/test_perception_ops.py``).
- ``scale_boxes_to_sam`` / ``upsample_mask_logits``: the processor's box normalisation and
  ``post_process_masks`` (bilinear, ``align_corners=False``, threshold at 0).
- ``owlv2_boxes_to_pixels``: OWLv2 pads the image to a square at the bottom/right before
  resizing, so its normalised boxes are fractions of the padded square's side
  ``max(H, W)``, not of the image's own width and height.
- ``nms`` / ``box_iou``: greedy non-maximum suppression in numpy, because
  ``torchvision.ops.nms`` is unavailable.
- ``normalize_depth``: Depth Anything's relative models output inverse depth (disparity,
  bigger = closer). The twin wants 0 = nearest, 1 = farthest within the frame, so the map is
  min-max normalised and flipped. This keeps the model's ordering exactly; the spacing stays
  linear in disparity because relative disparity is only defined up to scale and shift, which
  rules out inverting it into metric depth.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------- boxes


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of XYXY boxes: (N, 4) x (M, 4) -> (N, M). Degenerate boxes have IoU 0."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    left_top = np.maximum(a[:, None, :2], b[None, :, :2])
    right_bottom = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(right_bottom - left_top, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS: indices of kept boxes, highest score first (ties keep the earlier box)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        if order.size == 1:
            break
        rest = order[1:]
        overlaps = box_iou(boxes[best : best + 1], boxes[rest])[0]
        order = rest[overlaps <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def class_aware_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """NMS run separately per class; kept indices sorted by descending score."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    classes = np.asarray(classes).reshape(-1)
    keep: list[int] = []
    for cls in np.unique(classes):
        members = np.nonzero(classes == cls)[0]
        keep.extend(members[nms(boxes[members], scores[members], iou_threshold)].tolist())
    keep_arr = np.asarray(keep, dtype=np.int64)
    return keep_arr[np.argsort(-scores[keep_arr], kind="stable")] if keep_arr.size else keep_arr


def owlv2_boxes_to_pixels(pred_boxes_cxcywh: np.ndarray, height: int, width: int) -> np.ndarray:
    """OWLv2 normalised (cx, cy, w, h) boxes -> XYXY pixels of the unpadded image, clipped to it.

    The processor pads to a ``max(H, W)`` square at the bottom/right, so one scale factor
    (the square's side) maps both axes; clipping then removes the padding region.
    """
    boxes = np.asarray(pred_boxes_cxcywh, dtype=np.float64).reshape(-1, 4)
    side = float(max(height, width))
    cx, cy, w, h = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1) * side
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width)
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height)
    return xyxy


# --------------------------------------------------------------------------- SAM 2 pre/post-processing


def sam2_preprocess(image: np.ndarray, size: int, mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, size, size) float32, as ``Sam2ImageProcessor`` prepares it.

    Resized straight to the square (SAM 2 does not keep the aspect ratio; prompts and masks
    are rescaled per axis instead), bilinear; PIL antialiases when it shrinks, as the
    torchvision resize the processor uses does.
    """
    from PIL import Image

    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {array.shape} dtype {array.dtype}")
    if array.shape[:2] != (size, size):
        array = np.asarray(Image.fromarray(array).resize((size, size), Image.Resampling.BILINEAR))
    pixels = array.astype(np.float32) / 255.0
    pixels = (pixels - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def scale_boxes_to_sam(boxes_xyxy: np.ndarray, height: int, width: int, size: int) -> np.ndarray:
    """XYXY pixel boxes of an (H, W) image -> the SAM input square's coordinates (per-axis scale)."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4).copy()
    boxes[:, [0, 2]] *= size / width
    boxes[:, [1, 3]] *= size / height
    return boxes


def upsample_mask_logits(logits: object, height: int, width: int) -> np.ndarray:
    """(N, h, w) low-resolution mask logits (torch tensor) -> (N, H, W) bool masks (logit > 0)."""
    import torch
    import torch.nn.functional as F

    tensor = torch.as_tensor(logits).float()
    if tensor.ndim == 2:
        tensor = tensor[None]
    if tensor.ndim != 3:
        raise ValueError(f"expected (N, h, w) mask logits, got shape {tuple(tensor.shape)}")
    if tensor.shape[0] == 0:
        return np.zeros((0, height, width), dtype=bool)
    out = np.empty((tensor.shape[0], height, width), dtype=bool)
    # One mask at a time: N full-resolution float maps at once can take gigabytes on large frames.
    for i in range(tensor.shape[0]):
        full = F.interpolate(tensor[i][None, None], size=(height, width), mode="bilinear", align_corners=False)
        out[i] = (full[0, 0] > 0).numpy()
    return out


# --------------------------------------------------------------------------- depth


def normalize_depth(inverse_depth: np.ndarray) -> np.ndarray:
    """Relative inverse depth (bigger = closer) -> normalised depth in [0, 1] (0 = nearest in the frame).

    A constant map (no depth information) becomes all zeros.
    """
    disparity = np.asarray(inverse_depth, dtype=np.float64)
    finite = np.isfinite(disparity)
    if not finite.any():
        return np.zeros(disparity.shape, dtype=np.float32)
    low, high = float(disparity[finite].min()), float(disparity[finite].max())
    if high - low <= 1e-12:
        return np.zeros(disparity.shape, dtype=np.float32)
    # Non-finite pixels (rare; bad model output) count as farthest rather than poisoning the stats.
    filled = np.where(finite, disparity, low)
    return ((high - filled) / (high - low)).astype(np.float32)


def depth_stats(normalized_depth: np.ndarray, mask: np.ndarray) -> tuple[float, float] | None:
    """(mean, std) of normalised depth inside ``mask``; None for an empty mask."""
    values = np.asarray(normalized_depth)[np.asarray(mask, dtype=bool)]
    if values.size == 0:
        return None
    mean = float(np.clip(values.mean(), 0.0, 1.0))
    return round(mean, 4), round(float(values.std()), 4)
