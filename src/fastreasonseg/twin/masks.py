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


def rle_string_counts(counts: str) -> list[int]:
    """Decode the run lengths of a compressed COCO RLE string (pycocotools ``rleFrString``).

    Hand-written because pycocotools does not check them: a string whose runs do not sum to
    h*w decodes without error into uninitialised memory. Each run is a little-endian base-32
    varint in characters '0'..'o' (5 bits each, bit 0x20 = more, 0x10 = sign of the last
    group); runs after the second are stored as the difference to the run two before.
    Raises ValueError for a character out of range, a truncated run or a negative length.
    """
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value = shift = 0
        more = True
        while more:
            if position >= len(counts):
                raise ValueError("truncated run at the end of the string")
            code = ord(counts[position]) - 48
            if not 0 <= code < 64:
                raise ValueError(f"character {counts[position]!r} at {position} is not a COCO RLE digit")
            value |= (code & 0x1F) << (5 * shift)
            more = bool(code & 0x20)
            position += 1
            shift += 1
            if not more and code & 0x10:
                value -= 1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            raise ValueError(f"run {len(runs)} has negative length {value}")
        runs.append(value)
    return runs


def rle_problem(rle: Any) -> str | None:
    """Why ``rle`` is not a usable COCO RLE for its ``size`` (a message), or None when it is."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        return "expected a dict with 'size' and 'counts'"
    size = rle["size"]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size)):
        return f"size must be [height, width] positive integers, got {size!r}"
    expected = size[0] * size[1]
    counts = rle["counts"]
    if isinstance(counts, bytes):
        try:
            counts = counts.decode("ascii")
        except UnicodeDecodeError:
            return "counts bytes are not ASCII"
    if isinstance(counts, str):
        try:
            runs = rle_string_counts(counts)
        except ValueError as exc:
            return f"corrupt counts string: {exc}"
    elif isinstance(counts, list):
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
            return "counts list must hold non-negative integers"
        runs = counts
    else:
        return f"counts must be a string or a list of run lengths, got {type(counts).__name__}"
    total = sum(runs)
    if total != expected:
        return f"run lengths sum to {total}, expected {size[0]}x{size[1]}={expected}"
    return None


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
    """Decode a COCO RLE dict (string or list counts) to a (H, W) bool array.

    Raises ValueError for an RLE whose runs do not cover the mask exactly (see ``rle_problem``):
    pycocotools would return garbage for it.
    """
    from pycocotools import mask as mask_utils

    problem = rle_problem(rle)
    if problem is not None:
        raise ValueError(f"invalid COCO RLE: {problem}")
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
