"""Pipeline step 4b: overlay pictures — the answer highlighted, the reasoning written beside it.

PNG for a one-frame twin, GIF for a video (frame index and time stamped on every frame).
GIF rather than MP4 because it needs no video encoder (``imageio-ffmpeg`` is not a
dependency); long videos are subsampled to at most ``max_gif_frames`` frames.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fastreasonseg.pipeline.segment import SegmentResult
    from fastreasonseg.twin.core import DigitalTwin

MAX_GIF_FRAMES = 120
PANEL_MIN_WIDTH = 420


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def reasoning_panel(result: SegmentResult, twin: DigitalTwin, width: int, height: int) -> np.ndarray:
    """A white panel with the query, the answer (ids and labels), failures and the rollout text, wrapped."""
    from PIL import Image, ImageDraw

    font_size = 14
    font = _font(font_size)
    chars = max(20, int(width / (font_size * 0.55)))
    labels = {}
    for object_id in result.object_ids:
        try:
            labels[object_id] = twin.object(object_id).label
        except KeyError:
            labels[object_id] = "?"
    answer = ", ".join(f"{i} {labels[i]}" for i in result.object_ids) or "none"
    blue, red, dark = (10, 60, 160), (150, 20, 20), (20, 20, 20)
    lines = [(line, blue) for line in textwrap.wrap(f"Query: {result.query}", chars)]
    lines += [(line, blue) for line in textwrap.wrap(f"Answer: {answer}", chars)]
    codes = sorted({f.code for f in result.rollout.failures})
    if codes:
        lines += [(line, red) for line in textwrap.wrap("Problems: " + ", ".join(codes), chars)]
    lines.append(("", dark))
    for paragraph in result.rollout.text.split("\n"):
        lines += [(line, dark) for line in textwrap.wrap(paragraph, chars) or [""]]
    line_height = font_size + 4
    height = max(height, line_height * len(lines) + 16)
    panel = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    for row, (line, color) in enumerate(lines):
        draw.text((8, 8 + row * line_height), line, fill=color, font=font)
    return np.asarray(panel)


def overlay_frame(twin: DigitalTwin, result: SegmentResult, frame_index: int, image: np.ndarray | None,
                  panel: np.ndarray | None = None) -> np.ndarray:
    """The frame with the answer highlighted, the reasoning panel on its right (same height)."""
    from fastreasonseg.twin.render import render_frame

    picture = render_frame(twin, frame_index, image=image, highlight_ids=result.object_ids)
    if panel is None:
        panel = reasoning_panel(result, twin, max(PANEL_MIN_WIDTH, picture.shape[1] // 2), picture.shape[0])
    height = max(picture.shape[0], panel.shape[0])
    canvas = np.full((height, picture.shape[1] + panel.shape[1], 3), 255, dtype=np.uint8)
    canvas[: picture.shape[0], : picture.shape[1]] = picture
    canvas[: panel.shape[0], picture.shape[1]:] = panel
    return canvas


def write_overlay(path: Path, twin: DigitalTwin, result: SegmentResult, backgrounds: dict[int, np.ndarray],
                  max_gif_frames: int = MAX_GIF_FRAMES) -> Path:
    """PNG for a one-frame twin, GIF for a video (subsampled to ``max_gif_frames``)."""
    from PIL import Image

    first = twin.frames[0].index
    panel = reasoning_panel(result, twin, max(PANEL_MIN_WIDTH, twin.source.width // 2), twin.source.height)
    if len(twin.frames) == 1:
        path = path.with_suffix(".png")
        Image.fromarray(overlay_frame(twin, result, first, backgrounds.get(first), panel)).save(path)
        return path
    import cv2

    path = path.with_suffix(".gif")
    step = max(1, -(-len(twin.frames) // max_gif_frames))
    frames = []
    for frame in twin.frames[::step]:
        picture = overlay_frame(twin, result, frame.index, backgrounds.get(frame.index), panel)
        stamp = f"frame {frame.index}  t={frame.time:.2f}s"
        cv2.putText(picture, stamp, (twin.source.width + 8, picture.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (90, 90, 90), 1, cv2.LINE_AA)
        frames.append(Image.fromarray(picture))
    fps = twin.source.fps or 10.0
    duration_ms = int(1000 * step / fps)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=max(20, duration_ms), loop=0,
                   optimize=False)
    return path
