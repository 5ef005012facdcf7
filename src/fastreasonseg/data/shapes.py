"""Object silhouettes for the synthetic world: each knowledge-base ``shape`` is a few primitives in a unit box.

A template is a list of primitives in box-relative coordinates (x right, y down, both in
[0, 1]): filled polygons, ellipses, half ellipses and rectangles, and "holes" that cut
out (a donut's centre, a bicycle frame's gaps). :func:`draw_shape` rasterises one into a
``(height, width)`` bool patch with OpenCV (sub-pixel ``shift`` so small objects keep
their form), so masks are silhouettes that fill their box - people have heads and legs,
animals legs and a tail, vehicles wheels - rather than rectangles, and the box computed
from the mask is the object's box.

Hand-written because no library draws "a rough dog" in a box; the templates are
deliberately crude (a detector mask of a real dog is not precise either) and the
silhouettes face right: :func:`draw_shape` mirrors them for objects facing left.
"""

from __future__ import annotations

import numpy as np

# Primitive kinds: ("poly", [(x, y), ...]), ("ellipse", cx, cy, rx, ry), ("arc", cx, cy, rx, ry, start_deg, end_deg)
# (a filled sector, angles clockwise from +x because y points down), ("rect", x1, y1, x2, y2).
# A kind prefixed with "-" erases instead of filling.
Primitive = tuple

_CHAMFER = [(0.05, 0), (0.95, 0), (1, 0.05), (1, 0.95), (0.95, 1), (0.05, 1), (0, 0.95), (0, 0.05)]


def _banana() -> list[tuple[float, float]]:
    angles = np.linspace(np.pi * 0.05, np.pi * 0.95, 12)
    outer = [(0.5 - 0.5 * np.cos(a), 0.0 + 1.0 * np.sin(a)) for a in angles]
    inner = [(0.5 - 0.38 * np.cos(a), -0.05 + 0.62 * np.sin(a)) for a in angles[::-1]]
    points = [(0.0, 0.0), *outer, (1.0, 0.0), *inner]  # pointed tips touch the top corners of the box
    return [(float(x), float(min(1.0, max(0.0, y)))) for x, y in points]


SHAPES: dict[str, list[Primitive]] = {
    "box": [("poly", _CHAMFER)],
    "panel": [("rect", 0, 0, 1, 1)],
    "ball": [("ellipse", 0.5, 0.5, 0.5, 0.5)],
    "disc": [("ellipse", 0.5, 0.5, 0.5, 0.5)],
    "plate": [("ellipse", 0.5, 0.5, 0.5, 0.5)],
    "blob": [("poly", [(0.1, 0.3), (0.35, 0.0), (0.7, 0.08), (1.0, 0.35), (0.9, 0.8), (0.6, 1.0), (0.2, 0.92),
                       (0.0, 0.6)])],
    "person": [("ellipse", 0.5, 0.09, 0.15, 0.09),
               ("poly", [(0.22, 0.18), (0.78, 0.18), (1.0, 0.52), (0.9, 0.56), (0.75, 0.35), (0.72, 0.62),
                         (0.28, 0.62), (0.25, 0.35), (0.1, 0.56), (0.0, 0.52)]),
               ("rect", 0.28, 0.6, 0.47, 1.0), ("rect", 0.53, 0.6, 0.72, 1.0)],
    "quadruped": [("ellipse", 0.45, 0.45, 0.37, 0.2), ("ellipse", 0.85, 0.3, 0.15, 0.14),
                  ("poly", [(0.76, 0.0), (0.84, 0.2), (0.72, 0.2)]),
                  ("rect", 0.14, 0.5, 0.23, 1.0), ("rect", 0.29, 0.5, 0.37, 1.0), ("rect", 0.55, 0.5, 0.63, 1.0),
                  ("rect", 0.68, 0.5, 0.76, 1.0), ("poly", [(0.0, 0.28), (0.12, 0.36), (0.1, 0.44)])],
    "bird": [("ellipse", 0.45, 0.58, 0.33, 0.22), ("ellipse", 0.8, 0.36, 0.13, 0.14),
             ("poly", [(0.22, 0.5), (0.48, 0.0), (0.6, 0.48)]), ("poly", [(0.0, 0.48), (0.16, 0.5), (0.14, 0.68)]),
             ("poly", [(0.92, 0.32), (1.0, 0.38), (0.92, 0.44)]),
             ("rect", 0.4, 0.76, 0.45, 1.0), ("rect", 0.52, 0.76, 0.57, 1.0)],
    "fish": [("ellipse", 0.55, 0.5, 0.45, 0.34), ("poly", [(0.0, 0.1), (0.16, 0.5), (0.0, 0.9)]),
             ("poly", [(0.42, 0.18), (0.52, 0.0), (0.62, 0.18)]), ("poly", [(0.46, 0.82), (0.52, 1.0), (0.6, 0.82)])],
    "car": [("poly", [(0.0, 0.42), (0.2, 0.38), (0.32, 0.0), (0.72, 0.0), (0.85, 0.38), (1.0, 0.46), (1.0, 0.8),
                      (0.0, 0.8)]),
            ("ellipse", 0.22, 0.8, 0.1, 0.2), ("ellipse", 0.78, 0.8, 0.1, 0.2)],
    "truck": [("rect", 0.0, 0.0, 0.7, 0.82), ("poly", [(0.72, 0.15), (0.92, 0.15), (1.0, 0.45), (1.0, 0.82),
                                                        (0.72, 0.82)]),
              ("ellipse", 0.15, 0.85, 0.08, 0.15), ("ellipse", 0.45, 0.85, 0.08, 0.15),
              ("ellipse", 0.85, 0.85, 0.08, 0.15)],
    "bus": [("poly", [(0.02, 0), (0.98, 0), (1, 0.05), (1, 0.85), (0, 0.85), (0, 0.05)]),
            ("ellipse", 0.18, 0.86, 0.08, 0.14), ("ellipse", 0.82, 0.86, 0.08, 0.14)],
    "bike": [("ellipse", 0.2, 0.7, 0.2, 0.3), ("-ellipse", 0.2, 0.7, 0.13, 0.2),
             ("ellipse", 0.8, 0.7, 0.2, 0.3), ("-ellipse", 0.8, 0.7, 0.13, 0.2),
             ("poly", [(0.2, 0.68), (0.45, 0.2), (0.75, 0.2), (0.82, 0.68), (0.74, 0.7), (0.52, 0.34), (0.3, 0.72)]),
             ("rect", 0.7, 0.0, 0.85, 0.22), ("rect", 0.32, 0.1, 0.5, 0.2)],
    "cart": [("poly", [(0.0, 0.0), (1.0, 0.0), (0.9, 0.72), (0.1, 0.72)]),
             ("ellipse", 0.2, 0.86, 0.12, 0.14), ("ellipse", 0.8, 0.86, 0.12, 0.14)],
    "boat": [("poly", [(0.0, 0.6), (1.0, 0.6), (0.86, 1.0), (0.12, 1.0)]), ("rect", 0.28, 0.4, 0.62, 0.62),
             ("rect", 0.49, 0.0, 0.53, 0.6), ("poly", [(0.53, 0.03), (0.88, 0.55), (0.53, 0.55)])],
    "plane": [("ellipse", 0.5, 0.5, 0.5, 0.12), ("poly", [(0.38, 0.5), (0.56, 0.5), (0.46, 1.0), (0.36, 1.0)]),
              ("poly", [(0.38, 0.5), (0.56, 0.5), (0.46, 0.0), (0.36, 0.0)]),
              ("poly", [(0.02, 0.5), (0.06, 0.12), (0.13, 0.12), (0.14, 0.5)])],
    "pole": [("rect", 0.4, 0.08, 0.6, 1.0), ("ellipse", 0.5, 0.08, 0.5, 0.08)],
    "sign": [("rect", 0.45, 0.3, 0.55, 1.0),
             ("poly", [(0.3, 0), (0.7, 0), (1, 0.1), (1, 0.22), (0.7, 0.33), (0.3, 0.33), (0, 0.22), (0, 0.1)])],
    "hydrant": [("rect", 0.2, 0.2, 0.8, 1.0), ("ellipse", 0.5, 0.2, 0.3, 0.2), ("rect", 0.0, 0.4, 1.0, 0.55)],
    "bench": [("rect", 0.0, 0.35, 1.0, 0.5), ("rect", 0.0, 0.0, 1.0, 0.2), ("rect", 0.05, 0.5, 0.12, 1.0),
              ("rect", 0.88, 0.5, 0.95, 1.0), ("rect", 0.05, 0.2, 0.1, 0.35), ("rect", 0.9, 0.2, 0.95, 0.35)],
    "table": [("poly", [(0.04, 0.0), (0.96, 0.0), (1.0, 0.12), (0.0, 0.12)]), ("rect", 0.03, 0.12, 0.1, 1.0),
              ("rect", 0.9, 0.12, 0.97, 1.0), ("rect", 0.25, 0.12, 0.3, 0.85), ("rect", 0.7, 0.12, 0.75, 0.85)],
    "chair": [("rect", 0.15, 0.0, 0.85, 0.12), ("rect", 0.15, 0.0, 0.25, 0.5), ("rect", 0.75, 0.0, 0.85, 0.5),
              ("rect", 0.0, 0.46, 1.0, 0.6), ("rect", 0.05, 0.6, 0.13, 1.0), ("rect", 0.87, 0.6, 0.95, 1.0)],
    "sofa": [("rect", 0.05, 0.0, 0.95, 0.45), ("poly", [(0, 0.25), (0.12, 0.25), (0.12, 0.4), (0.88, 0.4),
                                                         (0.88, 0.25), (1, 0.25), (1, 0.88), (0, 0.88)]),
             ("rect", 0.04, 0.88, 0.1, 1.0), ("rect", 0.9, 0.88, 0.96, 1.0)],
    "bed": [("rect", 0.04, 0.0, 0.96, 0.45), ("rect", 0.0, 0.3, 1.0, 0.85), ("rect", 0.02, 0.85, 0.08, 1.0),
            ("rect", 0.92, 0.85, 0.98, 1.0)],
    "shelf": [("rect", 0, 0, 1, 1)],
    "cup": [("poly", [(0.0, 0.0), (0.8, 0.0), (0.7, 1.0), (0.1, 1.0)]), ("ellipse", 0.84, 0.45, 0.16, 0.22),
            ("-ellipse", 0.86, 0.45, 0.07, 0.1)],
    "bowl": [("arc", 0.5, 0.0, 0.5, 1.0, 0, 180)],
    "bin": [("poly", [(0.0, 0.0), (1.0, 0.0), (0.9, 1.0), (0.1, 1.0)])],
    "bottle": [("poly", [(0.0, 0.4), (0.3, 0.2), (0.7, 0.2), (1.0, 0.4), (1.0, 0.96), (0.95, 1.0), (0.05, 1.0),
                         (0.0, 0.96)]), ("rect", 0.33, 0.0, 0.67, 0.22)],
    "jar": [("poly", [(0, 0.14), (1, 0.14), (1, 0.95), (0.95, 1), (0.05, 1), (0, 0.95)]), ("rect", 0.1, 0.0, 0.9, 0.14)],
    "cone": [("poly", [(0.45, 0.0), (0.55, 0.0), (0.86, 0.88), (1.0, 0.88), (1.0, 1.0), (0.0, 1.0), (0.0, 0.88),
                       (0.14, 0.88)])],
    "bar": [("rect", 0.25, 0.0, 0.75, 0.58), ("poly", [(0.0, 0.58), (1.0, 0.58), (1.0, 0.96), (0.9, 1.0), (0.1, 1.0),
                                                       (0.0, 0.96)])],
    "frame": [("rect", 0, 0, 1, 0.1), ("rect", 0, 0.9, 1, 1), ("rect", 0, 0, 0.08, 1), ("rect", 0.92, 0, 1, 1),
              ("rect", 0, 0.45, 1, 0.53)],
    "screen": [("rect", 0.0, 0.0, 1.0, 0.85), ("rect", 0.42, 0.85, 0.58, 0.95), ("rect", 0.25, 0.94, 0.75, 1.0)],
    "laptop": [("rect", 0.1, 0.0, 0.9, 0.6), ("poly", [(0.1, 0.6), (0.9, 0.6), (1.0, 1.0), (0.0, 1.0)])],
    "tree": [("ellipse", 0.5, 0.36, 0.5, 0.36), ("rect", 0.42, 0.6, 0.58, 1.0)],
    "bush": [("ellipse", 0.28, 0.62, 0.28, 0.38), ("ellipse", 0.72, 0.62, 0.28, 0.38), ("ellipse", 0.5, 0.42, 0.3, 0.42)],
    "flower": [("rect", 0.45, 0.3, 0.55, 1.0), ("ellipse", 0.5, 0.18, 0.5, 0.18)],
    "plant": [("poly", [(0.25, 0.65), (0.75, 0.65), (0.68, 1.0), (0.32, 1.0)]), ("ellipse", 0.5, 0.36, 0.5, 0.36)],
    "umbrella": [("arc", 0.5, 0.42, 0.5, 0.42, 180, 360), ("rect", 0.47, 0.4, 0.53, 1.0)],
    "kite": [("poly", [(0.5, 0.0), (1.0, 0.35), (0.5, 1.0), (0.0, 0.35)])],
    "balloon": [("ellipse", 0.5, 0.4, 0.5, 0.4), ("rect", 0.47, 0.78, 0.53, 1.0)],
    "donut": [("ellipse", 0.5, 0.5, 0.5, 0.5), ("-ellipse", 0.5, 0.5, 0.18, 0.18)],
    "cake": [("rect", 0.0, 0.25, 1.0, 1.0), ("ellipse", 0.5, 0.25, 0.5, 0.25)],
    "sandwich": [("arc", 0.5, 0.5, 0.5, 0.5, 180, 360), ("poly", [(0, 0.5), (1, 0.5), (1, 0.9), (0.94, 1), (0.06, 1),
                                                                   (0, 0.9)])],
    "loaf": [("arc", 0.5, 0.55, 0.5, 0.55, 180, 360), ("rect", 0.0, 0.55, 1.0, 1.0)],
    "wedge": [("poly", [(0.0, 1.0), (1.0, 1.0), (1.0, 0.35), (0.0, 0.0)])],
    "banana": [("poly", _banana())],
    "glove": [("ellipse", 0.42, 0.62, 0.42, 0.38), ("ellipse", 0.86, 0.45, 0.14, 0.2),
              ("rect", 0.12, 0.0, 0.72, 0.5)],
    "board": [("ellipse", 0.5, 0.5, 0.5, 0.5)],
    "bat": [("poly", [(0.0, 0.0), (1.0, 0.0), (0.62, 0.92), (0.38, 0.92)]), ("ellipse", 0.5, 0.95, 0.3, 0.05)],
    "racket": [("ellipse", 0.5, 0.3, 0.5, 0.3), ("-ellipse", 0.5, 0.3, 0.38, 0.22), ("rect", 0.42, 0.58, 0.58, 1.0)],
    "trophy": [("poly", [(0, 0), (1, 0), (0.7, 0.5), (0.3, 0.5)]), ("rect", 0.45, 0.5, 0.55, 0.8),
               ("rect", 0.2, 0.8, 0.8, 1.0)],
    "wineglass": [("arc", 0.5, 0.0, 0.5, 0.45, 0, 180), ("rect", 0.46, 0.4, 0.54, 0.92),
                  ("ellipse", 0.5, 0.95, 0.4, 0.05)],
    "kettle": [("ellipse", 0.5, 0.6, 0.4, 0.4), ("poly", [(0.82, 0.5), (1.0, 0.2), (1.0, 0.3), (0.86, 0.72)]),
               ("rect", 0.3, 0.0, 0.7, 0.22), ("rect", 0.0, 0.4, 0.14, 0.7)],
    "pan": [("ellipse", 0.3, 0.5, 0.3, 0.5), ("rect", 0.58, 0.4, 1.0, 0.6)],
    "pot": [("rect", 0.1, 0.12, 0.9, 1.0), ("rect", 0.0, 0.2, 1.0, 0.3), ("ellipse", 0.5, 0.12, 0.36, 0.12)],
    "lamp": [("poly", [(0.2, 0.0), (0.8, 0.0), (1.0, 0.45), (0.0, 0.45)]), ("rect", 0.45, 0.45, 0.55, 0.92),
             ("ellipse", 0.5, 0.95, 0.3, 0.05)],
    "fan": [("ellipse", 0.5, 0.4, 0.5, 0.4), ("rect", 0.45, 0.78, 0.55, 0.95), ("rect", 0.25, 0.94, 0.75, 1.0)],
    "pillow": [("ellipse", 0.5, 0.5, 0.5, 0.5), ("rect", 0.08, 0.08, 0.92, 0.92)],
    "curtain": [("rect", 0.0, 0.0, 1.0, 0.94), ("ellipse", 0.17, 0.94, 0.17, 0.06), ("ellipse", 0.5, 0.94, 0.17, 0.06),
                ("ellipse", 0.83, 0.94, 0.17, 0.06)],
    "teddy": [("ellipse", 0.5, 0.24, 0.28, 0.22), ("ellipse", 0.28, 0.07, 0.1, 0.07), ("ellipse", 0.72, 0.07, 0.1, 0.07),
              ("ellipse", 0.5, 0.68, 0.38, 0.32), ("ellipse", 0.1, 0.55, 0.1, 0.13), ("ellipse", 0.9, 0.55, 0.1, 0.13)],
    "headphones": [("arc", 0.5, 0.55, 0.45, 0.55, 180, 360), ("-arc", 0.5, 0.55, 0.36, 0.45, 180, 360),
                   ("ellipse", 0.1, 0.75, 0.1, 0.25), ("ellipse", 0.9, 0.75, 0.1, 0.25)],
    "hairdryer": [("poly", [(0.0, 0.02), (0.85, 0.0), (0.85, 0.36), (0.0, 0.36)]),
                  ("rect", 0.85, 0.06, 1.0, 0.3), ("poly", [(0.35, 0.3), (0.55, 0.3), (0.6, 1.0), (0.42, 1.0)])],
    "iron": [("poly", [(0.0, 1.0), (1.0, 1.0), (1.0, 0.6), (0.75, 0.3), (0.2, 0.3)]), ("rect", 0.3, 0.0, 0.8, 0.32),
             ("-rect", 0.4, 0.1, 0.7, 0.3)],
    "scissors": [("poly", [(0.36, 0.0), (0.46, 0.0), (0.56, 0.56), (0.46, 0.56)]),
                 ("poly", [(0.54, 0.0), (0.64, 0.0), (0.54, 0.56), (0.44, 0.56)]),
                 ("ellipse", 0.25, 0.8, 0.25, 0.2), ("-ellipse", 0.25, 0.8, 0.13, 0.1),
                 ("ellipse", 0.75, 0.8, 0.25, 0.2), ("-ellipse", 0.75, 0.8, 0.13, 0.1)],
    "bag": [("poly", [(0, 0.3), (1, 0.3), (0.95, 1.0), (0.05, 1.0)]), ("arc", 0.5, 0.32, 0.3, 0.32, 180, 360),
            ("-arc", 0.5, 0.32, 0.2, 0.22, 180, 360)],
    "backpack": [("poly", [(0.1, 0.12), (0.9, 0.12), (1.0, 0.3), (1.0, 0.95), (0.95, 1.0), (0.05, 1.0), (0.0, 0.95),
                           (0.0, 0.3)]), ("arc", 0.5, 0.14, 0.22, 0.14, 180, 360)],
    "tie": [("poly", [(0.3, 0.0), (0.7, 0.0), (0.6, 0.15), (1.0, 0.85), (0.5, 1.0), (0.0, 0.85), (0.4, 0.15)])],
    "glasses": [("ellipse", 0.2, 0.5, 0.2, 0.5), ("ellipse", 0.8, 0.5, 0.2, 0.5), ("rect", 0.38, 0.35, 0.62, 0.5)],
    "shirt": [("poly", [(0.3, 0.0), (0.7, 0.0), (1.0, 0.2), (0.9, 0.4), (0.8, 0.35), (0.8, 1.0), (0.2, 1.0),
                        (0.2, 0.35), (0.1, 0.4), (0.0, 0.2)])],
    "trousers": [("poly", [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.58, 1.0), (0.5, 0.3), (0.42, 1.0), (0.0, 1.0)])],
    "dress": [("poly", [(0.35, 0.0), (0.65, 0.0), (0.7, 0.35), (1.0, 1.0), (0.0, 1.0), (0.3, 0.35)])],
    "boot": [("poly", [(0.0, 0.0), (0.4, 0.0), (0.45, 0.5), (0.95, 0.65), (1.0, 0.8), (1.0, 1.0), (0.0, 1.0)])],
    "toilet": [("ellipse", 0.5, 0.6, 0.5, 0.28), ("rect", 0.1, 0.0, 0.9, 0.4), ("rect", 0.3, 0.8, 0.7, 1.0)],
    "saw": [("poly", [(0.0, 0.3), (0.72, 0.05), (0.72, 0.95), (0.0, 0.55)]), ("rect", 0.72, 0.0, 1.0, 1.0),
            ("-rect", 0.8, 0.25, 0.93, 0.75)],
    "ladder": [("rect", 0.0, 0.0, 0.12, 1.0), ("rect", 0.88, 0.0, 1.0, 1.0)]
    + [("rect", 0.0, 0.08 + 0.2 * k, 1.0, 0.14 + 0.2 * k) for k in range(5)],
    "guitar": [("ellipse", 0.5, 0.78, 0.5, 0.22), ("ellipse", 0.5, 0.56, 0.38, 0.16), ("rect", 0.43, 0.0, 0.57, 0.5)],
    "hammer": [("rect", 0.0, 0.0, 1.0, 0.22), ("rect", 0.42, 0.2, 0.58, 1.0)],
    "dome": [("arc", 0.5, 1.0, 0.5, 1.0, 180, 360)],
    "vase": [("ellipse", 0.5, 0.62, 0.5, 0.38), ("rect", 0.3, 0.0, 0.7, 0.32)],
    "flag": [("rect", 0.0, 0.0, 0.06, 1.0), ("poly", [(0.06, 0.0), (1.0, 0.05), (1.0, 0.4), (0.06, 0.45)])],
}

# Silhouettes that have a front and a back: mirrored when the object faces left.
DIRECTIONAL: frozenset[str] = frozenset({"quadruped", "bird", "fish", "car", "truck", "bike", "boat", "plane", "cart",
                                         "kettle", "pan", "hairdryer", "iron", "saw", "boot", "cup", "flag"})


def draw_shape(shape: str, width: int, height: int, *, facing_left: bool = False) -> np.ndarray:
    """Rasterise template ``shape`` into a ``(height, width)`` bool patch that touches all four edges.

    Unknown shapes fall back to the chamfered box (the knowledge base is validated against
    :data:`SHAPES` by the tests, so this only protects hand-edited knowledge files).
    """
    import cv2

    width, height = max(1, int(width)), max(1, int(height))
    patch = np.zeros((height, width), dtype=np.uint8)
    scale = 16  # cv2 fixed-point shift=4: sub-pixel vertices keep small silhouettes recognisable
    sx, sy = (width - 1) * scale, (height - 1) * scale
    for prim in SHAPES.get(shape, SHAPES["box"]):
        kind, value = (prim[0][1:], 0) if prim[0].startswith("-") else (prim[0], 1)
        if kind == "poly":
            pts = np.array([[round(x * sx), round(y * sy)] for x, y in prim[1]], dtype=np.int32)
            cv2.fillPoly(patch, [pts], value, lineType=cv2.LINE_8, shift=4)
        elif kind == "rect":
            _, x1, y1, x2, y2 = prim
            pts = np.array([[x1 * sx, y1 * sy], [x2 * sx, y1 * sy], [x2 * sx, y2 * sy], [x1 * sx, y2 * sy]])
            cv2.fillPoly(patch, [np.round(pts).astype(np.int32)], value, lineType=cv2.LINE_8, shift=4)
        elif kind in ("ellipse", "arc"):
            cx, cy, rx, ry = prim[1:5]
            start, end = (prim[5], prim[6]) if kind == "arc" else (0, 360)
            center = (round(cx * sx), round(cy * sy))
            axes = (max(1, round(rx * sx)), max(1, round(ry * sy)))
            cv2.ellipse(patch, center, axes, 0, start, end, value, thickness=-1, lineType=cv2.LINE_8, shift=4)
        else:  # pragma: no cover - guarded by the template table above
            raise ValueError(f"unknown primitive {kind!r} in shape {shape!r}")
    if not patch.any():  # a 1-2 pixel object: thin parts vanished, keep at least its centre
        patch[height // 2, width // 2] = 1
    mask = patch.astype(bool)
    if facing_left and shape in DIRECTIONAL:
        mask = mask[:, ::-1]
    return mask
