"""The result.json contract (``docs/DESIGN.md``) for one query, the objects table and the overlay picture.

The contract itself comes from :mod:`fastreasonseg.pipeline.segment` (the same code as
``frs segment``); the service only appends fields after the contract's own ones
(``format_ok``, ``failures``, ``tool_rounds``, ``overlay_png``). Backgrounds are never looked
up from the twin's ``source.path`` (``pipeline.inputs.find_source`` does that for local
files): in a service that path comes from the client and must not be opened.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from fastreasonseg.pipeline.segment import SegmentResult
    from fastreasonseg.twin.core import DigitalTwin


def segment_result(result: SegmentResult) -> dict[str, Any]:
    """result.json for one query, plus the service's extra fields."""
    rollout = result.rollout
    return {**result.to_json(), "format_ok": rollout.format_ok, "failures": [f.to_dict() for f in rollout.failures],
            "tool_rounds": [r.to_dict() for r in rollout.rounds], "notes": list(rollout.notes)}


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
