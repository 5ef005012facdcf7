"""Mask helpers: COCO RLE encode/decode through pycocotools, boxes as masks.

The twin stores masks as COCO RLE dicts (``{"size": [h, w], "counts": str}``) with the
compressed string form of ``counts``; these helpers are the only place that touches
pycocotools, so the rest of the code deals in ``bool`` arrays of shape (H, W).
When an object has no mask the DESIGN contract says its box is its mask:
``box_to_mask`` rasterises an XYXY pixel box the same way everywhere.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

RLE = dict[str, Any]


def rle_string_counts(counts: str) -> np.ndarray:
    """Decode the run lengths of a compressed COCO RLE string (pycocotools ``rleFrString``) as int64.

    Hand-written because pycocotools does not check them: a string whose runs do not sum to
    h*w decodes without error into uninitialised memory. Each run is a little-endian base-32
    varint in characters '0'..'o' (5 bits each, bit 0x20 = more, 0x10 = sign of the last
    group); runs after the second are stored as the difference to the run two before.
    Vectorised with numpy (a Python loop costs more than pycocotools' own decode).
    Raises ValueError for a character out of range, a truncated run or a negative length.
    """
    try:
        raw = counts.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("counts string is not ASCII") from None
    codes = np.frombuffer(raw, dtype=np.uint8).astype(np.int64) - 48
    if codes.size == 0:
        return np.zeros(0, dtype=np.int64)
    bad = np.flatnonzero((codes < 0) | (codes >= 64))
    if bad.size:
        raise ValueError(f"character {counts[bad[0]]!r} at {bad[0]} is not a COCO RLE digit")
    last = (codes & 0x20) == 0  # the character that ends a run
    if not last[-1]:
        raise ValueError("truncated run at the end of the string")
    ends = np.flatnonzero(last)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > 12:  # 60 bits: more would overflow int64 and no real mask needs it
        raise ValueError("run length with too many digits")
    digit_index = np.arange(codes.size) - np.repeat(starts, lengths)
    values = np.add.reduceat((codes & 0x1F) << (5 * digit_index), starts)
    negative = (codes[ends] & 0x10) != 0
    values = values - np.where(negative, np.left_shift(1, 5 * lengths), 0)
    # undo the delta coding: x[i] = d[i] + x[i - 2] for i > 2, i.e. cumulative sums along each parity from 1 and 2
    runs = values.copy()
    if runs.size > 3:
        runs[1::2] = np.cumsum(values[1::2])
        runs[2::2] = np.cumsum(values[2::2])
    if (runs < 0).any():
        index = int(np.flatnonzero(runs < 0)[0])
        raise ValueError(f"run {index} has negative length {int(runs[index])}")
    return runs


def rle_problem(rle: Any) -> str | None:
    """Why ``rle`` is not a usable COCO RLE for its ``size`` (a message), or None when it is."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        return "expected a dict with 'size' and 'counts'"
    size = rle["size"]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size)):
        return f"size must be [height, width] positive integers, got {size!r}"
    counts = rle["counts"]
    if isinstance(counts, bytes):
        try:
            counts = counts.decode("ascii")
        except UnicodeDecodeError:
            return "counts bytes are not ASCII"
    if isinstance(counts, str):
        return _string_counts_problem(counts, size[0], size[1])
    if isinstance(counts, list):
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
            return "counts list must hold non-negative integers"
        runs = counts
    else:
        return f"counts must be a string or a list of run lengths, got {type(counts).__name__}"
    total = sum(runs)
    if total != size[0] * size[1]:
        return f"run lengths sum to {total}, expected {size[0]}x{size[1]}={size[0] * size[1]}"
    return None


@functools.lru_cache(maxsize=8192)
def _string_counts_problem(counts: str, height: int, width: int) -> str | None:
    # Cached: the Python scan costs about as much as pycocotools' decode, and a twin's masks are
    # decoded again and again (tools, rendering) after being checked once when the twin was read.
    try:
        runs = rle_string_counts(counts)
    except ValueError as exc:
        return f"corrupt counts string: {exc}"
    total = int(runs.sum())
    if total != height * width:
        return f"run lengths sum to {total}, expected {height}x{width}={height * width}"
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
