"""Pictures of a twin: masks, boxes and labels drawn over the source image (or a blank canvas).

One function serves ``frs twin show --render``, the segmentation overlays and the demo, so
every picture the toolkit makes uses the same colours and label style.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from fastreasonseg.twin.core import DigitalTwin

# Tableau-like palette; colour is a function of the track id so an object keeps its colour across frames.
PALETTE = np.array(
    [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75],
     [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207], [174, 199, 232], [255, 187, 120]],
    dtype=np.uint8,
)


def color_for(object_id: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in PALETTE[object_id % len(PALETTE)])


def render_frame(twin: DigitalTwin, frame_index: int | None = None, image: np.ndarray | None = None,
                 highlight_ids: Iterable[int] | None = None, alpha: float = 0.45,
                 show_labels: bool = True) -> np.ndarray:
    """Draw one frame's objects as an (H, W, 3) uint8 RGB array.

    With ``highlight_ids`` the selected objects are filled in their colour and outlined
    thickly; the others get a thin outline only, so the answer stands out.
    """
    import cv2

    frame = twin.frames[0] if frame_index is None else twin.frame(frame_index)
    height, width = twin.source.height, twin.source.width
    if image is None:
        canvas = np.full((height, width, 3), 235, dtype=np.uint8)
    else:
        canvas = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., :3]).copy()
        if canvas.shape[:2] != (height, width):
            canvas = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
    highlight = set(highlight_ids) if highlight_ids is not None else None
    # Draw far objects first so near ones end up on top.
    ordered = sorted(frame.objects, key=lambda o: -(o.depth.mean if o.depth else 0.0))
    for obj in ordered:
        selected = highlight is None or obj.id in highlight
        color = np.array(color_for(obj.id), dtype=np.float32)
        mask = twin.object_mask(obj)
        if selected:
            canvas[mask] = (canvas[mask] * (1 - alpha) + color * alpha).astype(np.uint8)
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        thickness = 2 if selected and highlight is not None else 1
        cv2.drawContours(canvas, contours, -1, tuple(int(v) for v in color), thickness)
    if show_labels:
        scale = max(0.35, min(width, height) / 900)
        for obj in ordered:
            if highlight is not None and obj.id not in highlight and len(frame.objects) > 12:
                continue  # crowded scenes: label only the answer
            text = f"{obj.id}:{obj.label}"
            x, y = int(obj.box[0]), int(obj.box[1])
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            y = max(th + base, y)
            cv2.rectangle(canvas, (x, y - th - base), (x + tw, y), color_for(obj.id), -1)
            cv2.putText(canvas, text, (x, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def save_png(array: np.ndarray, path) -> None:
    """Write an RGB uint8 array as PNG."""
    from PIL import Image

    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
