"""The scene records and the world model: configuration, ground-truth objects, the pinhole camera, bodies.

:class:`SceneConfig` says how scenes are drawn, :class:`Scene` and :class:`SceneObject` are
what the generator returns. :class:`Camera` projects world metres to pixels and
:class:`Body` is one object's world state over time, shared by :mod:`.layout`,
:mod:`.motion` and :mod:`.raster`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fastreasonseg.data.knowledge import SCENE_TYPES, Category
from fastreasonseg.twin.core import DigitalTwin

INDOOR: frozenset[str] = frozenset({"kitchen", "dining_room", "living_room", "bedroom", "bathroom", "office",
                                    "classroom", "workshop"})
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
class Camera:
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
class Body:
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
    surface: Body | None = None
    motion: str = "static"
    partner: int | None = None
    facing_left: bool = False
    score: float = 0.95
    outlier: bool = False


def make_camera(scene_type: str, width: int, height: int, rng: np.random.Generator) -> Camera:
    indoor = scene_type in INDOOR
    focal = width * rng.uniform(0.78, 0.92)
    if indoor:
        hc, horizon = rng.uniform(1.35, 1.6), height * rng.uniform(0.32, 0.4)
        wall_z = rng.uniform(6.0, 8.5)
        z_near = focal * hc / (height - horizon) * 0.85
        return Camera(width, height, focal, hc, horizon, z_near, wall_z, True, wall_z=wall_z)
    hc, horizon = rng.uniform(1.5, 1.8), height * rng.uniform(0.38, 0.46)
    z_near = focal * hc / (height - horizon) * 0.85
    return Camera(width, height, focal, hc, horizon, z_near, 60.0, False)
