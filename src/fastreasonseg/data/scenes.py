"""Synthetic scenes: a 3-D layout seen through a pinhole camera, rasterised into a noise-free digital twin.

A scene has a type (kitchen, street, beach, ...) whose plausible objects come from the
knowledge base. Objects live in metres on a ground plane: furniture, people and animals
stand on the floor, cups and laptops on a supporting surface (a table, desk or counter
that is itself an object), clocks and paintings on the back wall, lamps hang from the
ceiling, birds and kites fly, boats float. A pinhole camera (focal length ``f`` pixels,
camera height ``hc`` metres, horizon row ``y_h``) projects them, so farther objects are
higher in the image and smaller, and the twin's depth (0 nearest, 1 farthest) is the
normalised distance the layout used. Masks are silhouettes from :mod:`.shapes`,
composited nearest first so occlusion follows depth (objects on a surface always cover
it), and each object's box, area and centroid are measured from its visible mask.

Videos: ``num_frames`` frames at ``fps``; movers (people, animals, vehicles, balls) get a
motion script - cross, enter, leave, stop, start, approach, recede, or two-object events
(overtake, meet) - and keep their track id in every frame they are visible in.

Departures from real data: object colours are flat, shapes are templates, perspective
is exact, and every object's colour is given in ``attributes["color"]`` (a real twin
would need a colour classifier). Noise that mimics real detectors is added separately
(:mod:`.noise`). Everything is hand-written: no library generates scene layouts with
the twin's conventions, and a per-object patch + label map keeps generation fast
(10,000 items in minutes on 2 CPU cores).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastreasonseg.data.knowledge import SCENE_TYPES, Category, KnowledgeBase, load_knowledge
from fastreasonseg.data.shapes import draw_shape
from fastreasonseg.twin.core import Depth, DigitalTwin, Frame, Source, TwinObject

INDOOR: frozenset[str] = frozenset({"kitchen", "dining_room", "living_room", "bedroom", "bathroom", "office",
                                    "classroom", "workshop"})
# Supporting surfaces each scene type may have (objects with support "table" stand on one of them).
SURFACES: dict[str, tuple[str, ...]] = {
    "kitchen": ("counter", "dining table"), "dining_room": ("dining table",), "living_room": ("coffee table",),
    "bedroom": ("nightstand", "desk", "dresser"), "bathroom": ("counter",), "office": ("desk",),
    "classroom": ("desk",), "workshop": ("workbench",), "street": ("bench",), "park": ("picnic table", "bench"),
    "beach": ("picnic table",), "farm": (), "sports_field": ("bench",),
}
# Height of the surface's top in metres (the knowledge base size is the silhouette, not the top).
SURFACE_TOP_M: dict[str, float] = {"bench": 0.45, "dining table": 0.76, "coffee table": 0.45, "desk": 0.75,
                                   "counter": 0.9, "workbench": 0.9, "nightstand": 0.6, "picnic table": 0.75,
                                   "dresser": 0.9}
SURFACE_DEPTH_M = 0.7
# On a beach the sand ends and the sea begins this far from the camera (boats float beyond it).
BEACH_SHORE_M = 14.0
MOTIONS: tuple[str, ...] = ("cross", "enter", "leave", "stop", "start", "approach", "recede")
PAIR_MOTIONS: tuple[str, ...] = ("overtake", "meet")


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn. Sizes in pixels; ``fps`` and ``num_frames`` only matter for videos."""

    width: int = 480
    height: int = 360
    video: bool = False
    num_frames: int = 8
    fps: float = 2.0
    min_objects: int = 4
    max_objects: int = 12
    min_visible_px: int = 30
    # Chance that one object does not belong in the scene type (a cow in the kitchen): "what is odd here?"
    p_outlier: float = 0.15
    scene_types: tuple[str, ...] = SCENE_TYPES
    # Categories never placed (held-out categories for train/val) and categories of which at
    # least one must appear (the held-out test subset).
    exclude_categories: frozenset[str] = frozenset()
    require_one_of: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not (64 <= self.width <= 4096 and 64 <= self.height <= 4096):
            raise ValueError(f"width/height must be 64..4096 pixels, got {self.width}x{self.height}")
        if not 5 <= self.num_frames <= 64:
            raise ValueError(f"num_frames must be 5..64 for videos (stop/start motions need 5), "
                             f"got {self.num_frames}")
        if not 0.25 <= self.fps <= 60:
            raise ValueError(f"fps must be 0.25..60, got {self.fps}")
        if not 0.0 <= self.p_outlier <= 1.0:
            raise ValueError(f"p_outlier must be a probability in [0, 1], got {self.p_outlier}")
        if not 1 <= self.min_objects <= self.max_objects <= 40:
            raise ValueError(f"need 1 <= min_objects <= max_objects <= 40, got {self.min_objects}, {self.max_objects}")
        unknown = set(self.scene_types) - set(SCENE_TYPES)
        if unknown or not self.scene_types:
            raise ValueError(f"unknown scene types {sorted(unknown)}; choose from {list(SCENE_TYPES)}")
        object.__setattr__(self, "exclude_categories", frozenset(self.exclude_categories))
        object.__setattr__(self, "require_one_of", frozenset(self.require_one_of))


@dataclass(frozen=True)
class SceneObject:
    """Ground-truth facts about one track that the twin does not carry (used to pick and phrase queries)."""

    id: int
    category: str
    color: str
    support: str
    surface_id: int | None = None
    motion: str = "static"
    partner_id: int | None = None
    facing_left: bool = False
    outlier: bool = False  # does not belong in this scene type


@dataclass(frozen=True)
class Scene:
    """A generated scene: its noise-free twin plus the layout facts behind it."""

    scene_id: str
    scene_type: str
    twin: DigitalTwin
    objects: dict[int, SceneObject]
    camera: dict[str, float] = field(default_factory=dict)

    def category(self, object_id: int) -> str:
        return self.objects[object_id].category


@dataclass
class _Camera:
    width: int
    height: int
    focal: float
    height_m: float
    horizon: float
    z_near: float
    z_far: float
    indoor: bool
    wall_z: float = math.inf
    ceiling_m: float = 2.6

    def project(self, x: float, z: float, y_bottom: float, w: float, h: float) -> tuple[float, float, float, float]:
        """XYXY pixel box of a w x h (metres) upright object whose bottom centre is at (x, y_bottom, z)."""
        u = self.width / 2 + self.focal * x / z
        v_bottom = self.horizon + self.focal * (self.height_m - y_bottom) / z
        half_w = self.focal * w / z / 2
        return (u - half_w, v_bottom - self.focal * h / z, u + half_w, v_bottom)

    def x_at(self, u: float, z: float) -> float:
        return (u - self.width / 2) * z / self.focal

    def depth(self, z: float) -> float:
        return float(min(1.0, max(0.0, (z - self.z_near) / (self.z_far - self.z_near))))


@dataclass
class _Body:
    """One object's world state over time (positions per frame)."""

    id: int
    category: Category
    color: str
    support: str
    w: float
    h: float
    d: float
    y_bottom: float
    xs: np.ndarray
    zs: np.ndarray
    surface: _Body | None = None
    motion: str = "static"
    partner: int | None = None
    facing_left: bool = False
    score: float = 0.95
    outlier: bool = False


def make_camera(scene_type: str, width: int, height: int, rng: np.random.Generator) -> _Camera:
    indoor = scene_type in INDOOR
    focal = width * rng.uniform(0.78, 0.92)
    if indoor:
        hc, horizon = rng.uniform(1.35, 1.6), height * rng.uniform(0.32, 0.4)
        wall_z = rng.uniform(6.0, 8.5)
        z_near = focal * hc / (height - horizon) * 0.85
        return _Camera(width, height, focal, hc, horizon, z_near, wall_z, True, wall_z=wall_z)
    hc, horizon = rng.uniform(1.5, 1.8), height * rng.uniform(0.38, 0.46)
    z_near = focal * hc / (height - horizon) * 0.85
    return _Camera(width, height, focal, hc, horizon, z_near, 60.0, False)


# --------------------------------------------------------------------------- layout


def _pick_categories(kb: KnowledgeBase, scene_type: str, config: SceneConfig, rng: np.random.Generator,
                     n: int) -> list[str]:
    """Sample ``n`` category names for a scene; repeats are likely so 'which of the cups' questions exist."""
    surfaces = set(SURFACES[scene_type])
    pool = [c for c in kb.by_place[scene_type]
            if c not in config.exclude_categories and c not in surfaces and not kb[c].is_surface]
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
                 camera: _Camera) -> list[_Body]:
    """Place objects in world coordinates (one frame); motion is added by :func:`animate`."""
    indoor = camera.indoor
    n_total = int(rng.integers(config.min_objects, config.max_objects + 1))
    surfaces_available = [s for s in SURFACES[scene_type] if s in kb and s not in config.exclude_categories]
    bodies: list[_Body] = []
    next_id = 1
    surface_bodies: list[_Body] = []
    if surfaces_available and rng.random() < (0.9 if indoor else 0.45):
        n_surfaces = 1 + int(rng.random() < 0.2)
        for _ in range(n_surfaces):
            name = surfaces_available[int(rng.integers(len(surfaces_available)))]
            cat = kb[name]
            w = cat.size_m[0] * rng.uniform(0.9, 1.15)
            top = SURFACE_TOP_M.get(name, cat.size_m[1])
            z = rng.uniform(camera.z_near * 1.35, camera.z_near * 1.35 + (2.2 if indoor else 4.0))
            u = rng.uniform(0.2, 0.8) * camera.width
            body = _Body(next_id, cat, str(rng.choice(cat.colors)), "floor", w, top, SURFACE_DEPTH_M, 0.0,
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


def _place(object_id: int, cat: Category, support: str, surfaces: list[_Body], camera: _Camera,
           rng: np.random.Generator, scene_type: str) -> _Body | None:
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
        return _Body(object_id, cat, color, support, w, h, d, y_bottom, np.array([x]), np.array([z]), surface=surface)
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
    return _Body(object_id, cat, color, support, w, h, d, y_bottom, np.array([x]), np.array([z]))


def _box(body: _Body, camera: _Camera, t: int = 0) -> tuple[float, float, float, float]:
    if body.category.is_surface:
        x, z = body.xs[t], body.zs[t]
        back = camera.project(x, z + body.d / 2, body.h, body.w, 0.0)
        front = camera.project(x, z - body.d / 2, 0.0, body.w, 0.0)
        return (front[0], back[1], front[2], front[3])
    return camera.project(body.xs[t], body.zs[t], body.y_bottom, body.w, body.h)


def _free(body: _Body, bodies: list[_Body], camera: _Camera, max_iou: float) -> bool:
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


# --------------------------------------------------------------------------- motion


def _speed_px(camera: _Camera, rng: np.random.Generator, num_frames: int) -> float:
    """Lateral displacement per frame in pixels: clearly moving (25%-70% of the width over the clip)."""
    return rng.uniform(0.25, 0.7) * camera.width / max(1, num_frames - 1)


def animate(bodies: list[_Body], camera: _Camera, config: SceneConfig, rng: np.random.Generator) -> None:
    """Give movers a motion script and fill every body's per-frame positions (in place)."""
    n = config.num_frames
    for body in bodies:
        body.xs = np.full(n, body.xs[0])
        body.zs = np.full(n, body.zs[0])
    movers = [b for b in bodies if b.category.moves and b.support in ("floor", "sky", "water") and b.surface is None]
    rng.shuffle(movers)
    # Two-object events first, so the pair is free to be scripted together; the pair shares a
    # support (two walkers, two cars, two birds), never a dolphin overtaking a penguin.
    # Prefer a pair that words can single out: two different one-off categories ("the dog overtakes the
    # horse"), or the only two of one category ("one cyclist overtakes the other").
    counts: dict[str, int] = {}
    for body in bodies:
        counts[body.category.name] = counts.get(body.category.name, 0) + 1
    pairs = []
    for i, a in enumerate(movers):
        for b in movers[i + 1:]:
            if b.support != a.support or (a.support == "floor" and b.category.group != a.category.group):
                continue
            same = a.category.name == b.category.name
            nameable = counts[a.category.name] == 2 if same else counts[a.category.name] == counts[b.category.name] == 1
            pairs.append((not nameable, i, a, b))
    if pairs and rng.random() < 0.6:
        _, _, a, b = min(pairs, key=lambda p: (p[0], p[1]))
        movers = [m for m in movers if m is not a and m is not b]
        kind = PAIR_MOTIONS[int(rng.integers(len(PAIR_MOTIONS)))]
        _pair_motion(kind, a, b, camera, rng, n)
    moving = sum(b.motion != "static" for b in bodies)
    for body in movers:
        if moving >= 2 and rng.random() < 0.3:
            continue  # some potential movers stay put: "the dog that is not moving"
        kind = MOTIONS[int(rng.integers(len(MOTIONS)))]
        _single_motion(kind, body, camera, rng, n)
        moving += 1


def _single_motion(kind: str, body: _Body, camera: _Camera, rng: np.random.Generator, n: int) -> None:
    z0 = body.zs[0]
    direction = 1.0 if rng.random() < 0.5 else -1.0
    step = camera.x_at(camera.width / 2 + _speed_px(camera, rng, n), z0) - camera.x_at(camera.width / 2, z0)
    t = np.arange(n, dtype=float)
    body.motion = kind
    if kind in ("approach", "recede"):
        if body.support == "sky":
            kind = body.motion = "cross"
        else:
            factor = rng.uniform(0.45, 0.65)
            z_end = z0 * factor if kind == "approach" else z0 / factor
            if kind == "approach":
                z_end = max(z_end, camera.z_near * 1.1)
            elif camera.indoor:
                z_end = min(z_end, camera.wall_z - 0.3)
            body.zs = np.linspace(z0, z_end, n)
            u0 = camera.width / 2 + camera.focal * body.xs[0] / z0
            body.xs = np.array([camera.x_at(u0, z) for z in body.zs]) + direction * step * 0.1 * t
            body.facing_left = direction < 0
            return
    body.facing_left = direction < 0
    if kind == "cross":
        body.xs = body.xs[0] + direction * step * (t - (n - 1) / 2)
    elif kind == "stop":
        k = int(rng.integers(2, n - 2))
        body.xs = body.xs[0] + direction * step * (np.minimum(t, k) - k)
    elif kind == "start":
        k = int(rng.integers(2, n - 2))
        body.xs = body.xs[0] + direction * step * np.maximum(0.0, t - k)
    elif kind in ("enter", "leave"):
        half_view = camera.x_at(camera.width, z0)
        margin = body.w / 2 + 0.05
        # enter: starts beyond the edge it comes from and is fully inside by mid-clip; leave: the reverse.
        k = int(rng.integers(2, n - 2))
        edge = -direction * (half_view + margin) if kind == "enter" else direction * (half_view + margin)
        fast = max(abs(step), (half_view * 0.6) / max(1, n - 1 - k) if kind == "enter" else (half_view * 0.6) / k)
        if kind == "enter":
            body.xs = edge + direction * fast * np.maximum(0.0, t - k + 1)
            body.xs = np.where(t < k, edge, body.xs)
        else:
            body.xs = edge - direction * fast * np.maximum(0.0, k - t)
            body.xs = np.where(t >= k, edge + direction * 0.5, body.xs)


def _pair_motion(kind: str, a: _Body, b: _Body, camera: _Camera, rng: np.random.Generator, n: int) -> None:
    t = np.arange(n, dtype=float)
    direction = 1.0 if rng.random() < 0.5 else -1.0
    z = float(np.clip(max(a.zs[0], b.zs[0]), camera.z_near * 1.3, camera.wall_z - 1.0 if camera.indoor else 25.0))
    if a.support == "sky" or b.support == "sky":
        z = a.zs[0]
    a.zs = np.full(n, z)
    b.zs = np.full(n, z + rng.uniform(0.3, 0.9))  # b slightly farther so the two never hide each other fully
    half_view = camera.x_at(camera.width, z)
    a.motion, b.motion, a.partner, b.partner = kind, kind, b.id, a.id
    if kind == "overtake":
        # a (faster) starts behind b and ends ahead of it, both moving the same way.
        slow = half_view * rng.uniform(0.15, 0.3) / (n - 1)
        fast = slow + half_view * rng.uniform(0.6, 0.9) / (n - 1)
        start = -direction * half_view * 0.75
        b.xs = start + direction * (half_view * 0.35 + slow * t)
        a.xs = start + direction * fast * t
        a.facing_left = b.facing_left = direction < 0
    else:  # meet: they walk towards each other and stop close together
        k = int(rng.integers(n // 2, n - 1))
        gap = max(a.w, b.w) * 0.6 + 0.2
        a_end, b_end = -gap / 2, gap / 2
        a_start, b_start = -half_view * 0.85, half_view * 0.85
        frac = np.minimum(t, k) / k
        a.xs = a_start + (a_end - a_start) * frac
        b.xs = b_start + (b_end - b_start) * frac
        a.facing_left, b.facing_left = False, True


# --------------------------------------------------------------------------- rasterising


def _surface_patch(body: _Body, camera: _Camera, t: int) -> tuple[np.ndarray, int, int]:
    """A supporting surface seen from above the table top: a trapezoid top plus a front panel or legs."""
    import cv2

    x, z, w, d, top = body.xs[t], body.zs[t], body.w, body.d, body.h
    def pt(dx: float, dz: float, y: float) -> tuple[float, float]:
        zz = z + dz
        return (camera.width / 2 + camera.focal * (x + dx) / zz, camera.horizon + camera.focal * (camera.height_m - y) / zz)
    back_l, back_r = pt(-w / 2, d / 2, top), pt(w / 2, d / 2, top)
    front_l, front_r = pt(-w / 2, -d / 2, top), pt(w / 2, -d / 2, top)
    floor_l, floor_r = pt(-w / 2, -d / 2, 0.0), pt(w / 2, -d / 2, 0.0)
    xs = [p[0] for p in (back_l, back_r, front_l, front_r, floor_l, floor_r)]
    ys = [p[1] for p in (back_l, back_r, front_l, front_r, floor_l, floor_r)]
    x0, y0 = math.floor(min(xs)), math.floor(min(ys))
    pw, ph = max(1, math.ceil(max(xs)) - x0 + 1), max(1, math.ceil(max(ys)) - y0 + 1)
    patch = np.zeros((ph, pw), dtype=np.uint8)
    def poly(points: list[tuple[float, float]]) -> np.ndarray:
        return np.array([[round((px - x0) * 16), round((py - y0) * 16)] for px, py in points], dtype=np.int32)
    cv2.fillPoly(patch, [poly([back_l, back_r, front_r, front_l])], 1, shift=4)
    if body.category.shape in ("table", "bench"):
        leg = max(1.5, (front_r[0] - front_l[0]) * 0.05)
        for fx in (front_l[0], front_r[0] - leg):
            cv2.fillPoly(patch, [poly([(fx, front_l[1]), (fx + leg, front_l[1]), (fx + leg, floor_l[1]),
                                       (fx, floor_l[1])])], 1, shift=4)
        thick = max(1.5, (floor_l[1] - front_l[1]) * 0.12)
        cv2.fillPoly(patch, [poly([front_l, front_r, (front_r[0], front_r[1] + thick),
                                   (front_l[0], front_l[1] + thick)])], 1, shift=4)
    else:
        cv2.fillPoly(patch, [poly([front_l, front_r, floor_r, floor_l])], 1, shift=4)
    return patch.astype(bool), x0, y0


def _occlusion_key(body: _Body, t: int) -> float:
    """Smaller draws on top. Objects on a surface stay in front of it (they stand on its top)."""
    if body.surface is not None:
        return body.surface.zs[t] - body.surface.d / 2 - 0.01 + 0.001 * (body.zs[t] - body.surface.zs[t])
    if body.category.is_surface:
        return body.zs[t] - body.d / 2
    return body.zs[t]


def rasterise_frame(bodies: list[_Body], camera: _Camera, t: int, min_visible_px: int) -> list[TwinObject]:
    """Composite every body nearest first and measure each visible mask (box, area, centroid)."""
    import cv2
    from pycocotools import mask as mask_utils

    width, height = camera.width, camera.height
    labels = np.zeros((height, width), dtype=np.int16)
    order = sorted(range(len(bodies)), key=lambda i: _occlusion_key(bodies[i], t))
    for rank, i in enumerate(order, start=1):
        body = bodies[i]
        if body.zs[t] <= 0.05:
            continue
        if body.category.is_surface:
            patch, x0, y0 = _surface_patch(body, camera, t)
        else:
            x1, y1, x2, y2 = camera.project(body.xs[t], body.zs[t], body.y_bottom, body.w, body.h)
            x0, y0 = math.floor(x1), math.floor(y1)
            pw, ph = max(1, round(x2 - x1)), max(1, round(y2 - y1))
            if pw > 4 * width or ph > 4 * height:
                continue  # far too close to the camera to draw sensibly
            patch = draw_shape(body.category.shape, pw, ph, facing_left=body.facing_left)
        # Clip the patch to the image.
        cx0, cy0 = max(0, x0), max(0, y0)
        cx1, cy1 = min(width, x0 + patch.shape[1]), min(height, y0 + patch.shape[0])
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        sub = patch[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
        region = labels[cy0:cy1, cx0:cx1]
        region[sub & (region == 0)] = rank
    counts = np.bincount(labels.ravel(), minlength=len(bodies) + 1)
    present = [r for r in range(1, len(bodies) + 1) if counts[r] >= min_visible_px]
    if not present:
        return []
    # pycocotools wants (H, W, N) in Fortran order, which is a C-ordered (N, W, H) array transposed:
    # one vectorised comparison against the transposed label map builds every mask without copies.
    ranks = np.array(present, dtype=np.int16)
    stacked = np.ascontiguousarray(labels.T)[None, :, :] == ranks[:, None, None]
    rles = mask_utils.encode(stacked.view(np.uint8).transpose(2, 1, 0))
    boxes = mask_utils.toBbox(rles)
    objects = []
    for k, rank in enumerate(present):
        body = bodies[order[rank - 1]]
        bx, by, bw, bh = (float(v) for v in boxes[k])
        area = int(counts[rank])
        # Centroid from the image moments of the object's crop only (a full-frame pass per object is slow).
        crop = (labels[int(by):int(by + bh), int(bx):int(bx + bw)] == rank).astype(np.uint8)
        moments = cv2.moments(crop, binaryImage=True)
        cx = bx + moments["m10"] / moments["m00"] + 0.5
        cy = by + moments["m01"] / moments["m00"] + 0.5
        counts_str = rles[k]["counts"]
        rle = {"size": [height, width], "counts": counts_str.decode("ascii") if isinstance(counts_str, bytes) else counts_str}
        depth_mean = camera.depth(body.zs[t])
        depth_std = min(0.2, body.d / (camera.z_far - camera.z_near) / 3.46 + 0.004)
        objects.append(TwinObject(
            id=body.id, label=body.category.name, score=round(body.score, 3), box=(bx, by, bx + bw, by + bh), mask=rle,
            area=area, centroid=(round(cx, 2), round(cy, 2)),
            depth=Depth(mean=round(depth_mean, 4), std=round(depth_std, 4)), attributes={"color": body.color}))
    objects.sort(key=lambda o: o.id)
    return objects


# --------------------------------------------------------------------------- the generator


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
