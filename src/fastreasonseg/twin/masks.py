"""Mask helpers: COCO RLE encode/decode through pycocotools, boxes as masks.

The twin stores masks as COCO RLE dicts (``{"size": [h, w], "counts": str}``) with the
compressed string form of ``counts``; these helpers are the only place that touches
pycocotools, so the rest of the code deals in ``bool`` arrays of shape (H, W).
When an object has no mask the DESIGN contract says its box is its mask:
``box_to_mask`` rasterises an XYXY pixel box the same way everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np

RLE = dict[str, Any]


def encode_mask(mask: np.ndarray) -> RLE:
    """Encode a (H, W) bool/0-1 array as a COCO RLE dict with a str ``counts``."""
    from pycocotools import mask as mask_utils

    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {array.shape}")
    rle = mask_utils.encode(np.asfortranarray(array.astype(np.uint8)))
    counts = rle["counts"]
    return {
        "size": [int(rle["size"][0]), int(rle["size"][1])],
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


def normalize_rle(rle: RLE) -> RLE:
    """Return ``rle`` with compressed string counts (accepts uncompressed list counts)."""
    from pycocotools import mask as mask_utils

    height, width = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):
        compressed = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
        counts = compressed["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    return {"size": [height, width], "counts": counts}


def decode_mask(rle: RLE) -> np.ndarray:
    """Decode a COCO RLE dict (string or list counts) to a (H, W) bool array."""
    from pycocotools import mask as mask_utils

    norm = normalize_rle(rle)
    return mask_utils.decode({"size": norm["size"], "counts": norm["counts"].encode("ascii")}).astype(bool)


def rle_area(rle: RLE) -> int:
    """Foreground pixel count of an RLE without decoding it."""
    from pycocotools import mask as mask_utils

    norm = normalize_rle(rle)
    return int(mask_utils.area({"size": norm["size"], "counts": norm["counts"].encode("ascii")}))


def box_to_mask(box: tuple[float, float, float, float] | list[float], height: int, width: int) -> np.ndarray:
    """Rasterise an XYXY pixel box: pixel (r, c) is inside when its centre lies in the box."""
    x1, y1, x2, y2 = box
    cols = np.arange(width) + 0.5
    rows = np.arange(height) + 0.5
    in_x = (cols >= x1) & (cols <= x2)
    in_y = (rows >= y1) & (rows <= y2)
    return in_y[:, None] & in_x[None, :]


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """Tight XYXY pixel box around the foreground (pixel edges), or None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def mask_centroid(mask: np.ndarray) -> tuple[float, float] | None:
    """Centre of mass (x, y) in pixels of the foreground (pixel centres), or None when empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return (float(xs.mean() + 0.5), float(ys.mean() + 0.5))
