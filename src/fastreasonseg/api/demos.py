"""Bundled demo scenes: synthetic scenes from fixed seeds, so they need no files, weights or network.

Each demo is one image scene from :mod:`fastreasonseg.data.scenes` (noise-free twin) plus its
flat-shaded picture from :mod:`fastreasonseg.data.render`; they are generated on first use
(under a second each) and kept, so picking a demo costs no perception. The README's Python
example and the web page of ``frs serve`` both use them::

    from fastreasonseg import demo_scene
    demo = demo_scene("kitchen")            # .twin (DigitalTwin), .picture (H, W, 3 uint8), .suggested_query

Departure from the paper: its examples are real photos through perception; these are synthetic
twins, so they show the reasoning stage alone.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from fastreasonseg.twin.core import DigitalTwin

# name -> (scene type, seed, a query that makes sense in it)
DEMOS: dict[str, tuple[str, int, str]] = {
    "kitchen": ("kitchen", 1, "the object on the far left"),
    "street": ("street", 7, "the nearest object"),
    "office": ("office", 3, "the largest object"),
}


@dataclass(frozen=True)
class DemoScene:
    name: str
    scene_type: str
    suggested_query: str
    twin: DigitalTwin
    picture: np.ndarray  # (H, W, 3) uint8 RGB


@functools.lru_cache(maxsize=len(DEMOS))
def demo_scene(name: str) -> DemoScene:
    """The demo called ``name`` (one of :data:`DEMOS`); KeyError naming the choices when there is none."""
    if name not in DEMOS:
        raise KeyError(f"no demo scene {name!r}; choose from {', '.join(DEMOS)}")
    import numpy as np

    from fastreasonseg.data.render import paint_frame
    from fastreasonseg.data.scenes import generate_scene

    scene_type, seed, query = DEMOS[name]
    scene = generate_scene(np.random.default_rng(seed), scene_id=f"demo-{name}", scene_type=scene_type)
    picture = paint_frame(scene.twin, 0, {"type": scene.scene_type, "camera": scene.camera})
    return DemoScene(name=name, scene_type=scene_type, suggested_query=query, twin=scene.twin, picture=picture)
