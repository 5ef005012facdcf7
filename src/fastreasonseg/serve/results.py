"""The result.json contract (DESIGN.md) for one rollout, the objects table and the overlay picture.

Thin adapter: ``frs segment`` (cli/segment.py) was not importable when this was written, so
the contract is built here from :class:`~fastreasonseg.reasoning.engine.RolloutResult`
following DESIGN.md exactly; the service only adds fields after the contract's own ones
(``format_ok``, ``failures``, ``tool_rounds``, ``overlay_png``).
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from fastreasonseg.reasoning.engine import RolloutResult
    from fastreasonseg.twin.core import DigitalTwin


def answer_frames(twin: DigitalTwin, object_ids: list[int]) -> list[dict[str, Any]]:
    """One union mask (COCO RLE) per frame of the twin: the answer's pixels in that frame (empty when absent)."""
    from fastreasonseg.twin.masks import encode_mask

    return [{"index": frame.index, "mask": encode_mask(twin.union_mask(object_ids, frame.index))}
            for frame in twin.frames]


def segment_result(twin: DigitalTwin, rollout: RolloutResult, perception_s: float) -> dict[str, Any]:
    """result.json for one query, plus the service's extra fields."""
    return {
        "query": rollout.query,
        "answer": {"object_ids": list(rollout.answer_ids)},
        "reasoning": rollout.text,
        "frames": answer_frames(twin, list(rollout.answer_ids)),
        "timing": {"perception_s": round(perception_s, 4), "reasoning_s": round(rollout.seconds, 4)},
        "format_ok": rollout.format_ok,
        "failures": [f.to_dict() for f in rollout.failures],
        "tool_rounds": [r.to_dict() for r in rollout.rounds],
    }


def object_rows(twin: DigitalTwin) -> list[dict[str, Any]]:
    """One row per track for the page's table: its first appearance's label, score, box and depth."""
    rows = []
    for track_id in twin.track_ids:
        appearances = twin.track(track_id)
        _, first = appearances[0]
        rows.append({"id": track_id, "label": first.label, "score": round(first.score, 3),
                     "box": [round(v, 1) for v in first.box], "area": float(first.area),
                     "depth": None if first.depth is None else round(first.depth.mean, 3),
                     "frames": len(appearances)})
    return rows


def overlay_png(twin: DigitalTwin, picture: np.ndarray | None, object_ids: list[int]) -> bytes:
    """PNG of the answer drawn over the source picture (a blank canvas for a bare twin).

    For a video, the first frame in which an answer object appears (else frame 0): a single
    still keeps the response small; ``frs segment`` writes the full animated overlay.
    """
    from PIL import Image

    from fastreasonseg.twin.render import render_frame

    frame_index = twin.frames[0].index
    wanted = set(object_ids)
    for frame in twin.frames:
        if wanted & set(frame.ids):
            frame_index = frame.index
            break
    image = picture if frame_index == twin.frames[0].index else None
    array = render_frame(twin, frame_index, image=image, highlight_ids=object_ids)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def png_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
