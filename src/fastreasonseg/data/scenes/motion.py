"""Video motion scripts: movers cross, enter, leave, stop, start, approach or recede; pairs overtake or meet.

:func:`animate` fills every body's per-frame positions in place; speeds are in pixels per
frame so that motion is clearly visible (25%-70% of the width over the clip).
"""

from __future__ import annotations

import numpy as np

from fastreasonseg.data.scenes.model import MOTIONS, PAIR_MOTIONS, Body, Camera, SceneConfig


def _speed_px(camera: Camera, rng: np.random.Generator, num_frames: int) -> float:
    """Lateral displacement per frame in pixels: clearly moving (25%-70% of the width over the clip)."""
    return rng.uniform(0.25, 0.7) * camera.width / max(1, num_frames - 1)


def animate(bodies: list[Body], camera: Camera, config: SceneConfig, rng: np.random.Generator) -> None:
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


def _single_motion(kind: str, body: Body, camera: Camera, rng: np.random.Generator, n: int) -> None:
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


def _pair_motion(kind: str, a: Body, b: Body, camera: Camera, rng: np.random.Generator, n: int) -> None:
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
