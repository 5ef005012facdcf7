"""Placing objects in world coordinates: which categories a scene gets, what each rests on, where it stands.

Supporting surfaces first (a table, desk or counter: :data:`~fastreasonseg.data.knowledge.SCENE_SURFACES`),
then the scene type's categories, each on its support (floor, a surface, the back wall,
the ceiling, the sky, the water); placements that would hide another object are redrawn.
"""

from __future__ import annotations

import numpy as np

from fastreasonseg.data.knowledge import SCENE_SURFACES, SURFACE_TOP_M, Category, KnowledgeBase
from fastreasonseg.data.scenes.model import BEACH_SHORE_M, SURFACE_DEPTH_M, Body, Camera, SceneConfig


def _pick_categories(kb: KnowledgeBase, scene_type: str, config: SceneConfig, rng: np.random.Generator,
                     n: int) -> list[str]:
    """Sample ``n`` category names for a scene; repeats are likely so 'which of the cups' questions exist."""
    # Surfaces are placed first (layout_scene), never drawn here.
    pool = [c for c in kb.by_place[scene_type] if c not in config.exclude_categories and not kb[c].is_surface]
    weights = np.array([4.0 if kb[c].group == "person" else 1.0 for c in pool])
    weights /= weights.sum()
    chosen: list[str] = []
    required = sorted(set(pool) & config.require_one_of)
    if required:
        chosen.append(required[int(rng.integers(len(required)))])
    if config.video:
        # A video needs things that move: two to four people, animals, vehicles or balls.
        movers = [c for c in pool if kb[c].moves and kb[c].support in ("floor", "sky", "water")]
        if movers:
            mover_weights = np.array([3.0 if kb[c].group == "person" else 1.0 for c in movers])
            picks = rng.choice(len(movers), size=int(rng.integers(2, 5)), p=mover_weights / mover_weights.sum())
            chosen.extend(movers[int(k)] for k in picks)
    while len(chosen) < n:
        if chosen and rng.random() < 0.3:
            chosen.append(chosen[int(rng.integers(len(chosen)))])  # another instance of a category already here
        else:
            chosen.append(pool[int(rng.choice(len(pool), p=weights))])
    return chosen


def _support_of(cat: Category, indoor: bool, has_surface: bool, scene_type: str) -> str:
    support = cat.support
    if support == "table" and not has_surface:
        return "floor"
    if support == "ceiling" and not indoor:
        return "floor"
    if support == "water" and scene_type != "beach":
        return "table" if indoor and has_surface else "floor"
    if support == "wall" and not indoor:
        return "floor"
    return support


def _size(cat: Category, rng: np.random.Generator) -> tuple[float, float, float]:
    w, h = cat.size_m
    scale = rng.uniform(0.85, 1.15)
    # Exaggerate tiny things (paperclips, keys) so they stay a few pixels wide, as a close-up photo would.
    boost = max(1.0, (0.12 / max(w, h)) ** 0.5)
    w, h = w * scale * boost, h * scale * boost
    return w, h, min(w, 1.5) * 0.6


def layout_scene(kb: KnowledgeBase, scene_type: str, config: SceneConfig, rng: np.random.Generator,
                 camera: Camera) -> list[Body]:
    """Place objects in world coordinates (one frame); motion is added by :func:`animate`."""
    indoor = camera.indoor
    n_total = int(rng.integers(config.min_objects, config.max_objects + 1))
    surfaces_available = [s for s in SCENE_SURFACES[scene_type] if s in kb and s not in config.exclude_categories]
    bodies: list[Body] = []
    next_id = 1
    surface_bodies: list[Body] = []
    if surfaces_available and rng.random() < (0.9 if indoor else 0.45):
        n_surfaces = 1 + int(rng.random() < 0.2)
        for _ in range(n_surfaces):
            name = surfaces_available[int(rng.integers(len(surfaces_available)))]
            cat = kb[name]
            w = cat.size_m[0] * rng.uniform(0.9, 1.15)
            top = SURFACE_TOP_M.get(name, cat.size_m[1])
            z = rng.uniform(camera.z_near * 1.35, camera.z_near * 1.35 + (2.2 if indoor else 4.0))
            u = rng.uniform(0.2, 0.8) * camera.width
            body = Body(next_id, cat, str(rng.choice(cat.colors)), "floor", w, top, SURFACE_DEPTH_M, 0.0,
                        np.array([camera.x_at(u, z)]), np.array([z]))
            if _free(body, bodies, camera, max_iou=0.15):
                bodies.append(body)
                surface_bodies.append(body)
                next_id += 1
    names = _pick_categories(kb, scene_type, config, rng, max(1, n_total - len(bodies)))
    outlier = None
    if rng.random() < config.p_outlier:
        misplaced = [c for c in kb.names() if scene_type not in kb[c].places and c not in config.exclude_categories
                     and kb[c].support in ("floor", "table") and not kb[c].is_surface and kb[c].size_m[1] < 2.5]
        if misplaced:
            outlier = misplaced[int(rng.integers(len(misplaced)))]
            names = [outlier, *names[:-1]] if len(names) > 1 else [outlier, *names]
    for name in names:
        cat = kb[name]
        support = _support_of(cat, indoor, bool(surface_bodies), scene_type)
        for _attempt in range(12):
            body = _place(next_id, cat, support, surface_bodies, camera, rng, scene_type)
            if body is not None and _free(body, bodies, camera, max_iou=0.35):
                body.outlier = name == outlier and not any(b.outlier for b in bodies)
                bodies.append(body)
                next_id += 1
                break
    return bodies


def _place(object_id: int, cat: Category, support: str, surfaces: list[Body], camera: Camera,
           rng: np.random.Generator, scene_type: str) -> Body | None:
    w, h, d = _size(cat, rng)
    color = str(rng.choice(cat.colors))
    surface = None
    y_bottom = 0.0
    u = rng.uniform(0.05, 0.95) * camera.width
    if support == "table":
        surface = surfaces[int(rng.integers(len(surfaces)))]
        z = surface.zs[0] + rng.uniform(-0.35, 0.35) * surface.d
        x = surface.xs[0] + rng.uniform(-0.45, 0.45) * surface.w
        y_bottom = surface.h
        return Body(object_id, cat, color, support, w, h, d, y_bottom, np.array([x]), np.array([z]), surface=surface)
    if support == "wall":
        z = camera.wall_z - 0.05
        # Tall things (curtains, whiteboards) hang low enough to fit under the ceiling.
        low = max(0.05, min(1.0, camera.ceiling_m - h - 0.3))
        y_bottom = rng.uniform(low, max(low + 0.01, camera.ceiling_m - h - 0.1))
    elif support == "ceiling":
        z = rng.uniform(camera.z_near * 1.6, camera.wall_z - 0.5)
        y_bottom = camera.ceiling_m - h
    elif support == "sky":
        if camera.indoor:
            z = rng.uniform(camera.z_near * 1.4, camera.wall_z - 0.5)
            y_bottom = rng.uniform(1.2, max(1.25, camera.ceiling_m - h - 0.1))
        else:
            # Far enough that the object fits in the sky band above the horizon.
            z = max(rng.uniform(6.0, 40.0), camera.focal * h / (camera.horizon * 0.6))
            y_bottom = camera.height_m + rng.uniform(0.15, 0.85) * camera.horizon * z / camera.focal
    elif support == "water":
        z = rng.uniform(BEACH_SHORE_M + 3.0, 55.0)
    else:
        # The bottom row is uniform over the ground below the horizon (as in photos, most things are
        # mid-distance), then pushed back until big things (buses, elephants) fit in the frame.
        v = rng.uniform(camera.horizon + 0.08 * (camera.height - camera.horizon), camera.height)
        z = camera.focal * camera.height_m / (v - camera.horizon)
        z = max(z, camera.focal * h / (camera.height * 0.8), camera.z_near * 1.1)
        if camera.indoor:
            z = min(z, camera.wall_z - d / 2 - 0.2)
        else:
            z = min(z, BEACH_SHORE_M if scene_type == "beach" else 45.0)
        if not camera.indoor and cat.support == "wall":
            y_bottom = rng.uniform(1.5, 3.0)
    x = camera.x_at(u, z)
    return Body(object_id, cat, color, support, w, h, d, y_bottom, np.array([x]), np.array([z]))


def _box(body: Body, camera: Camera, t: int = 0) -> tuple[float, float, float, float]:
    if body.category.is_surface:
        x, z = body.xs[t], body.zs[t]
        back = camera.project(x, z + body.d / 2, body.h, body.w, 0.0)
        front = camera.project(x, z - body.d / 2, 0.0, body.w, 0.0)
        return (front[0], back[1], front[2], front[3])
    return camera.project(body.xs[t], body.zs[t], body.y_bottom, body.w, body.h)


def _free(body: Body, bodies: list[Body], camera: Camera, max_iou: float) -> bool:
    """Reject placements that would hide another object (or be hidden) almost entirely, or fall outside the view."""
    box = _box(body, camera)
    if box[2] < 4 or box[0] > camera.width - 4 or box[3] < 4 or box[1] > camera.height - 4:
        return False
    for other in bodies:
        if other is body.surface:
            continue
        obox = _box(other, camera)
        inter_w = min(box[2], obox[2]) - max(box[0], obox[0])
        inter_h = min(box[3], obox[3]) - max(box[1], obox[1])
        if inter_w <= 0 or inter_h <= 0:
            continue
        inter = inter_w * inter_h
        area_a = (box[2] - box[0]) * (box[3] - box[1])
        area_b = (obox[2] - obox[0]) * (obox[3] - obox[1])
        # Containment matters more than IoU: a cup drawn entirely inside a person's box would vanish.
        if inter / max(1e-6, min(area_a, area_b)) > 0.6 or inter / (area_a + area_b - inter) > max_iou:
            return False
    return True
