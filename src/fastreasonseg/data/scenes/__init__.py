"""Synthetic scenes: a 3-D layout seen through a pinhole camera, rasterised into a noise-free digital twin.

A scene has a type (kitchen, street, beach, ...) whose plausible objects come from the
knowledge base. Objects live in metres on a ground plane: furniture, people and animals
stand on the floor, cups and laptops on a supporting surface (a table, desk or counter
that is itself an object), clocks and paintings on the back wall, lamps hang from the
ceiling, birds and kites fly, boats float. A pinhole camera (focal length ``f`` pixels,
camera height ``hc`` metres, horizon row ``y_h``) projects them, so farther objects are
higher in the image and smaller, and the twin's depth (0 nearest, 1 farthest) is the
normalised distance the layout used. Masks are silhouettes from :mod:`fastreasonseg.data.shapes`,
composited nearest first so occlusion follows depth (objects on a surface always cover
it), and each object's box, area and centroid are measured from its visible mask.

Videos: ``num_frames`` frames at ``fps``; movers (people, animals, vehicles, balls) get a
motion script - cross, enter, leave, stop, start, approach, recede, or two-object events
(overtake, meet) - and keep their track id in every frame they are visible in.

Departures from real data: object colours are flat, shapes are templates, perspective
is exact, and every object's colour is given in ``attributes["color"]`` (a real twin
would need a colour classifier). Noise that mimics real detectors is added separately
(:mod:`fastreasonseg.data.noise`). Everything is hand-written: no library generates scene layouts with
the twin's conventions, and a per-object patch + label map keeps generation fast
(10,000 items in minutes on 2 CPU cores).

Modules: :mod:`.model` (configuration, scene records, camera, bodies), :mod:`.layout`
(placing objects), :mod:`.motion` (video motion scripts), :mod:`.raster` (drawing and
measuring each frame); :func:`generate_scene` here ties them together.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastreasonseg.data.knowledge import KnowledgeBase, load_knowledge
from fastreasonseg.data.scenes.layout import layout_scene
from fastreasonseg.data.scenes.model import (
    BEACH_SHORE_M,
    INDOOR,
    MOTIONS,
    PAIR_MOTIONS,
    Body,
    Camera,
    Scene,
    SceneConfig,
    SceneObject,
    make_camera,
)
from fastreasonseg.data.scenes.motion import animate
from fastreasonseg.data.scenes.raster import rasterise_frame
from fastreasonseg.twin.core import DigitalTwin, Frame, Source

__all__ = ["BEACH_SHORE_M", "INDOOR", "MOTIONS", "PAIR_MOTIONS", "Body", "Camera", "Scene", "SceneConfig",
           "SceneObject", "animate", "generate_scene", "layout_scene", "make_camera", "rasterise_frame"]


def generate_scene(rng: np.random.Generator, config: SceneConfig | None = None, kb: KnowledgeBase | None = None,
                   scene_id: str = "scene", scene_type: str | None = None) -> Scene:
    """One random scene (image, or video when ``config.video``) and its noise-free twin."""
    config = config or SceneConfig()
    kb = kb or load_knowledge()
    for _attempt in range(20):
        stype = scene_type or config.scene_types[int(rng.integers(len(config.scene_types)))]
        camera = make_camera(stype, config.width, config.height, rng)
        bodies = layout_scene(kb, stype, config, rng, camera)
        if len(bodies) < min(3, config.min_objects):
            continue
        if config.require_one_of and not any(b.category.name in config.require_one_of for b in bodies):
            continue
        # Track ids in random order so an id says nothing about depth, position or category.
        new_ids = rng.permutation(len(bodies)) + 1
        for body, new_id in zip(bodies, new_ids, strict=True):
            body.id = int(new_id)
        for body in bodies:
            body.score = float(rng.uniform(0.72, 0.99))
        num_frames = config.num_frames if config.video else 1
        if config.video:
            animate(bodies, camera, config, rng)
        frames = []
        for t in range(num_frames):
            objects = rasterise_frame(bodies, camera, t, config.min_visible_px)
            frames.append(Frame(index=t, time=round(t / config.fps, 4) if config.video else 0.0, objects=tuple(objects)))
        if not frames[0].objects and not config.video:
            continue
        source = Source(kind="video" if config.video else "image", width=config.width, height=config.height,
                        num_frames=num_frames, path=f"synthetic/{scene_id}", fps=config.fps if config.video else None)
        twin = DigitalTwin(source=source, frames=tuple(frames))
        present = set(twin.track_ids)
        objects = {b.id: SceneObject(id=b.id, category=b.category.name, color=b.color, support=b.support,
                                     surface_id=b.surface.id if b.surface is not None else None, motion=b.motion,
                                     partner_id=b.partner, facing_left=b.facing_left, outlier=b.outlier)
                   for b in bodies if b.id in present}
        if len(objects) < min(2, config.min_objects):
            continue
        camera_info: dict[str, Any] = {"focal": round(camera.focal, 2), "height_m": round(camera.height_m, 3),
                                       "horizon": round(camera.horizon, 2), "indoor": camera.indoor}
        if camera.indoor:
            camera_info["wall_row"] = round(camera.horizon + camera.focal * camera.height_m / camera.wall_z, 2)
        elif stype == "beach":
            camera_info["shore_row"] = round(camera.horizon + camera.focal * camera.height_m / BEACH_SHORE_M, 2)
        return Scene(scene_id=scene_id, scene_type=stype, twin=twin, objects=objects, camera=camera_info)
    raise RuntimeError(f"could not lay out a scene for {scene_type or config.scene_types} in 20 attempts")
