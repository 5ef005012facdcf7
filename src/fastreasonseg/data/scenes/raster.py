"""Rasterising one frame: silhouettes composited nearest first, then each visible mask measured.

Occlusion follows depth (objects on a surface always cover it); each object's box, area and
centroid come from its visible mask, encoded as COCO RLE (pycocotools).
"""

from __future__ import annotations

import math

import numpy as np

from fastreasonseg.data.scenes.model import Body, Camera
from fastreasonseg.data.shapes import draw_shape
from fastreasonseg.twin.core import Depth, TwinObject


def _surface_patch(body: Body, camera: Camera, t: int) -> tuple[np.ndarray, int, int]:
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


def _occlusion_key(body: Body, t: int) -> float:
    """Smaller draws on top. Objects on a surface stay in front of it (they stand on its top)."""
    if body.surface is not None:
        return body.surface.zs[t] - body.surface.d / 2 - 0.01 + 0.001 * (body.zs[t] - body.surface.zs[t])
    if body.category.is_surface:
        return body.zs[t] - body.d / 2
    return body.zs[t]


def rasterise_frame(bodies: list[Body], camera: Camera, t: int, min_visible_px: int) -> list[TwinObject]:
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
