"""Pictures of synthetic scenes: a flat-shaded "photo" of the twin, and labelled overlays for people.

:func:`paint_frame` turns one frame of a synthetic twin into an RGB image - wall and floor
(indoors) or sky and ground (outdoors) split at the camera's horizon, every object filled
with its colour (``attributes["color"]``), darker at the edges and hazier with distance -
so ``frs segment`` and the demo have an image to run on. :func:`render_item` draws the
twin's ids, labels and outlines over that photo with the answer highlighted (PNG for an
image, GIF for a video) using the same :func:`fastreasonseg.twin.render.render_frame` as
every other overlay in the toolkit.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from fastreasonseg.data.knowledge import COLOR_RGB
from fastreasonseg.twin.core import DigitalTwin

_BACKGROUNDS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    # scene type -> (upper colour: wall or sky, lower colour: floor or ground)
    "kitchen": ((232, 226, 210), (170, 150, 120)), "dining_room": ((225, 215, 195), (140, 105, 75)),
    "living_room": ((215, 210, 190), (150, 120, 90)), "bedroom": ((210, 215, 230), (160, 130, 100)),
    "bathroom": ((220, 235, 240), (200, 200, 205)), "office": ((225, 225, 225), (120, 125, 135)),
    "classroom": ((235, 230, 200), (165, 140, 110)), "workshop": ((190, 185, 175), (120, 115, 110)),
    "street": ((170, 200, 235), (110, 110, 115)), "park": ((165, 205, 240), (105, 160, 80)),
    "beach": ((150, 200, 245), (225, 205, 150)), "farm": ((170, 205, 240), (140, 170, 80)),
    "sports_field": ((160, 200, 240), (80, 150, 70)),
}
_SEA = (60, 120, 180)


def paint_frame(twin: DigitalTwin, frame_index: int | None = None, scene: dict[str, Any] | None = None) -> np.ndarray:
    """An (H, W, 3) uint8 picture of one frame: background plus every object as a shaded silhouette.

    ``scene`` is the item's ``meta["scene"]`` (type and camera); without it a neutral
    two-tone background is drawn at mid height.
    """
    import cv2

    height, width = twin.source.height, twin.source.width
    frame = twin.frames[0] if frame_index is None else twin.frame(frame_index)
    scene = scene or {}
    camera = scene.get("camera", {})
    upper, lower = _BACKGROUNDS.get(scene.get("type", ""), ((225, 225, 225), (170, 160, 150)))
    horizon = float(camera.get("horizon", height * 0.4))
    split = float(camera.get("wall_row", horizon)) if camera.get("indoor") else horizon
    rows = np.arange(height, dtype=np.float32)[:, None, None]
    image = np.where(rows < split, np.array(upper, np.float32), np.array(lower, np.float32))
    # Light falls off towards the bottom of the floor / the top of the sky: a cheap sense of depth.
    shade = np.where(rows < split, 1.0 - 0.15 * (split - rows) / max(split, 1.0),
                     1.0 - 0.18 * (rows - split) / max(height - split, 1.0))
    image = image * shade
    if scene.get("type") == "beach":
        band = (rows >= horizon) & (rows < float(camera.get("shore_row", horizon + (height - horizon) * 0.3)))
        image = np.where(band, np.array(_SEA, np.float32), image)
    image = np.broadcast_to(image, (height, width, 3)).copy()
    for obj in sorted(frame.objects, key=lambda o: -(o.depth.mean if o.depth else 0.0)):
        mask = twin.object_mask(obj)
        base = np.array(COLOR_RGB.get(str(obj.attributes.get("color", "")), (150, 150, 150)), np.float32)
        haze = 0.35 * (obj.depth.mean if obj.depth else 0.0)
        color = base * (1 - haze) + np.array(upper, np.float32) * haze
        # Darker rim, brighter core: the distance transform gives a rounded look without any 3-D model.
        dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
        rim = np.clip(dist / 4.0, 0.0, 1.0)[mask]
        image[mask] = color[None, :] * (0.6 + 0.4 * rim[:, None])
    return np.clip(image, 0, 255).astype(np.uint8)


def render_item(twin: DigitalTwin, path: str | Path, *, highlight_ids: Iterable[int] | None = None,
                scene: dict[str, Any] | None = None, labels: bool = True, fps: float | None = None) -> Path:
    """Write the picture of a twin: PNG for an image, GIF for a video; the answer ids highlighted."""
    from fastreasonseg.twin.render import render_frame, save_png

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    highlight = list(highlight_ids) if highlight_ids is not None else None
    frames = []
    for frame in twin.frames:
        photo = paint_frame(twin, frame.index, scene)
        frames.append(render_frame(twin, frame.index, image=photo, highlight_ids=highlight) if labels else photo)
    if not twin.is_video:
        path = path.with_suffix(".png")
        save_png(frames[0], path)
        return path
    import imageio.v2 as imageio

    path = path.with_suffix(".gif")
    duration = 1.0 / (fps or twin.source.fps or 2.0)
    imageio.mimsave(path, frames, duration=duration, loop=0)
    return path
