"""Perception noise: turn a clean synthetic twin into what a real detector + tracker would have produced.

Real twins come from OWLv2 + SAM 2 + Depth Anything and are imperfect; a student trained
only on perfect twins would trust every label. At ``level`` in [0, 1] (0 = clean) this
module applies, with probabilities that scale with the level:

- **missed detections**: a whole track is lost (more often when small), or single
  frames flicker out of a video track;
- **label confusions**: a track is labelled as a similar category (same group and
  silhouette, or a shared synonym: "mug" for "cup", "sheep" for "goat");
- **duplicates**: a second, lower-scored detection of the same object with a shifted,
  shrunk mask and a new track id (detectors' classic double box);
- **false positives**: a low-scored blob labelled as something plausible for the scene;
- **jitter**: scores drop and wobble, masks are eroded or dilated by a pixel or two
  (box, area and centroid re-measured from the jittered mask), depth is perturbed, and
  colour attributes are occasionally swapped for a neighbouring colour.

Matched detections keep the clean track id, so the ground truth (from the clean twin)
stays comparable; the evaluator scores an answer by mask IoU against the clean masks in
any case (see :mod:`.items`). Probabilities are this project's guesses at typical
open-vocabulary detector behaviour, not measured from a particular model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from fastreasonseg.data.knowledge import SIMILAR_COLORS, KnowledgeBase, load_knowledge
from fastreasonseg.twin.core import Depth, DigitalTwin, Frame, TwinObject
from fastreasonseg.twin.masks import decode_mask, encode_mask

NOISE_LEVELS: dict[str, float] = {"none": 0.0, "low": 0.3, "medium": 0.6, "high": 1.0}


@dataclass(frozen=True)
class NoiseConfig:
    """Per-event probabilities at ``level`` = 1 (each is multiplied by the level)."""

    level: float = 0.0
    p_miss_track: float = 0.12
    p_miss_frame: float = 0.08
    p_confuse_label: float = 0.15
    p_duplicate: float = 0.08
    p_false_positive: float = 0.3  # per scene (per frame for a static object added to every frame)
    p_color_swap: float = 0.1
    max_mask_px: int = 2
    depth_sigma: float = 0.04
    score_drop: float = 0.25

    def __post_init__(self) -> None:
        if not 0.0 <= self.level <= 1.0:
            raise ValueError(f"noise level must be in [0, 1] (or one of {list(NOISE_LEVELS)}), got {self.level}")
        for name in ("p_miss_track", "p_miss_frame", "p_confuse_label", "p_duplicate", "p_false_positive",
                     "p_color_swap"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")


def parse_noise_level(value: str | float | None) -> float:
    """``"medium"`` -> 0.6, ``"0.4"`` -> 0.4; raises ValueError naming the accepted forms."""
    if value is None:
        return 0.0
    if isinstance(value, (int, float)):
        level = float(value)
    elif value.strip().lower() in NOISE_LEVELS:
        return NOISE_LEVELS[value.strip().lower()]
    else:
        try:
            level = float(value)
        except ValueError:
            raise ValueError(f"noise level must be a number in [0, 1] or one of {list(NOISE_LEVELS)}, "
                             f"got {value!r}") from None
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"noise level must be in [0, 1], got {level}")
    return level


def _measure(obj: TwinObject, mask: np.ndarray, offset: tuple[int, int] = (0, 0),
             size: tuple[int, int] | None = None) -> TwinObject | None:
    """Re-derive box, area, centroid and RLE from a changed mask (None when it vanished).

    ``mask`` may be a crop whose top-left corner sits at ``offset`` (x, y) in an image of
    ``size`` (height, width): measuring the crop instead of the whole frame is what keeps
    noisy video generation fast.
    """
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    ox, oy = offset
    box = (float(xs.min() + ox), float(ys.min() + oy), float(xs.max() + 1 + ox), float(ys.max() + 1 + oy))
    centroid = (round(float(xs.mean() + 0.5 + ox), 2), round(float(ys.mean() + 0.5 + oy), 2))
    if size is not None and (offset != (0, 0) or mask.shape != size):
        full = np.zeros(size, dtype=bool)
        full[oy:oy + mask.shape[0], ox:ox + mask.shape[1]] = mask
        mask = full
    return replace(obj, box=box, mask=encode_mask(mask), area=len(xs), centroid=centroid)


def _crop(mask: np.ndarray, box: tuple[float, float, float, float], pad: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The part of a full-frame mask around ``box`` (plus ``pad`` pixels), and its (x, y) offset."""
    height, width = mask.shape
    x0, y0 = max(0, int(box[0]) - pad), max(0, int(box[1]) - pad)
    x1, y1 = min(width, int(np.ceil(box[2])) + pad), min(height, int(np.ceil(box[3])) + pad)
    return mask[y0:y1, x0:x1], (x0, y0)


def _jitter_mask(mask: np.ndarray, rng: np.random.Generator, radius: int) -> np.ndarray:
    """Dilate or erode by ``radius`` pixels (SAM masks are a pixel or two off at the edges)."""
    import cv2

    if radius == 0:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    op = cv2.dilate if rng.random() < 0.5 else cv2.erode
    out = op(mask.astype(np.uint8), kernel).astype(bool)
    return out if out.sum() >= 10 else mask


def _shift_mask(mask: np.ndarray, dx: int, dy: int, keep: float) -> np.ndarray:
    """The mask shifted by (dx, dy) and cut to its top/left ``keep`` share: a sloppy second detection."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    src = mask[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    out[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
    xs = np.nonzero(out.any(axis=0))[0]
    if len(xs):
        out[:, int(xs.min() + keep * (xs.max() - xs.min() + 1)):] = False
    return out


def add_noise(twin: DigitalTwin, level: float, rng: np.random.Generator, *, kb: KnowledgeBase | None = None,
              config: NoiseConfig | None = None, scene_categories: list[str] | None = None) -> DigitalTwin:
    """A noisy copy of ``twin`` (the input is not modified). ``level`` 0 returns the twin unchanged."""
    config = replace(config or NoiseConfig(), level=level)
    if level <= 0.0:
        return twin
    kb = kb or load_knowledge()
    p = {name: getattr(config, name) * level for name in ("p_miss_track", "p_miss_frame", "p_confuse_label",
                                                          "p_duplicate", "p_false_positive", "p_color_swap")}
    track_ids = twin.track_ids
    mean_area = {tid: float(np.mean([o.area for _, o in twin.track(tid)])) for tid in track_ids}
    frame_area = twin.source.width * twin.source.height
    missed = set()
    for tid in track_ids:
        small = mean_area[tid] < 0.003 * frame_area
        if rng.random() < p["p_miss_track"] * (2.0 if small else 1.0):
            missed.add(tid)
    if len(missed) >= len(track_ids):  # never erase the whole scene
        missed.discard(track_ids[int(rng.integers(len(track_ids)))])
    relabel: dict[int, str] = {}
    recolor: dict[int, str] = {}
    for tid in track_ids:
        label = twin.track(tid)[0][1].label
        if label in kb and rng.random() < p["p_confuse_label"]:
            options = kb.similar(label)
            if options:
                relabel[tid] = options[int(rng.integers(len(options)))]
        color = twin.track(tid)[0][1].attributes.get("color")
        if color in SIMILAR_COLORS and rng.random() < p["p_color_swap"]:
            options = SIMILAR_COLORS[color]
            recolor[tid] = options[int(rng.integers(len(options)))]
    next_id = max(track_ids, default=0) + 1
    duplicates: dict[int, int] = {}
    for tid in track_ids:
        if tid not in missed and rng.random() < p["p_duplicate"]:
            duplicates[tid] = next_id
            next_id += 1
    score_offset = {tid: float(rng.uniform(0.0, config.score_drop * level)) for tid in track_ids}
    depth_offset = {tid: float(rng.normal(0.0, config.depth_sigma * level)) for tid in track_ids}
    dup_shift = {tid: (int(rng.integers(-6, 7)), int(rng.integers(-6, 7)), float(rng.uniform(0.45, 0.8)))
                 for tid in duplicates}

    frames = []
    for frame in twin.frames:
        objects: list[TwinObject] = []
        for obj in frame.objects:
            if obj.id in missed or (twin.is_video and rng.random() < p["p_miss_frame"]):
                continue
            radius = int(rng.integers(0, config.max_mask_px + 1))
            mask = None
            noisy = obj
            if radius or obj.id in duplicates:  # decoding and re-encoding is the slow part: only when needed
                mask = decode_mask(obj.mask) if obj.mask is not None else twin.object_mask(obj)
            if radius:
                crop, offset = _crop(mask, obj.box, radius + 1)
                size = (twin.source.height, twin.source.width)
                noisy = _measure(obj, _jitter_mask(crop, rng, radius), offset, size) or obj
            score = float(np.clip(obj.score - score_offset[obj.id] + rng.normal(0, 0.03 * level), 0.05, 1.0))
            depth = obj.depth
            if depth is not None:
                depth = Depth(mean=round(float(np.clip(depth.mean + depth_offset[obj.id] + rng.normal(0, 0.01 * level),
                                                       0.0, 1.0)), 4),
                              std=round(depth.std * float(rng.uniform(0.8, 1.5)), 4))
            attributes = dict(obj.attributes)
            if obj.id in recolor:
                attributes["color"] = recolor[obj.id]
            noisy = replace(noisy, label=relabel.get(obj.id, obj.label), score=round(score, 3), depth=depth,
                            attributes=attributes)
            objects.append(noisy)
            if obj.id in duplicates:
                dx, dy, keep = dup_shift[obj.id]
                dup = _measure(obj, _shift_mask(mask, dx, dy, keep))
                if dup is not None and dup.area >= 10:
                    objects.append(replace(dup, id=duplicates[obj.id], label=noisy.label,
                                           score=round(max(0.05, score - float(rng.uniform(0.1, 0.3))), 3),
                                           depth=depth, attributes=attributes))
        frames.append(replace(frame, objects=tuple(objects)))
    frames = _add_false_positive(frames, twin, rng, p["p_false_positive"], next_id, kb, scene_categories)
    return replace(twin, frames=tuple(frames))


def _add_false_positive(frames: list[Frame], twin: DigitalTwin, rng: np.random.Generator, probability: float,
                        new_id: int, kb: KnowledgeBase, scene_categories: list[str] | None) -> list[Frame]:
    """With ``probability``, a low-score static blob labelled as something plausible appears in every frame."""
    import cv2

    if rng.random() >= probability:
        return frames
    labels = [c for c in (scene_categories or []) if c in kb] or list(kb.names())
    label = labels[int(rng.integers(len(labels)))]
    width, height = twin.source.width, twin.source.height
    w, h = int(rng.integers(8, max(9, width // 8))), int(rng.integers(8, max(9, height // 8)))
    x0, y0 = int(rng.integers(0, width - w)), int(rng.integers(height // 3, height - h))
    mask = np.zeros((height, width), dtype=np.uint8)
    cv2.ellipse(mask, (x0 + w // 2, y0 + h // 2), (w // 2, h // 2), 0, 0, 360, 1, -1)
    color = kb[label].colors[int(rng.integers(len(kb[label].colors)))]
    score = round(float(rng.uniform(0.1, 0.4)), 3)
    depth = Depth(mean=round(float(rng.uniform(0.1, 0.9)), 4), std=0.02)
    template = TwinObject(id=new_id, label=label, score=score, box=(0, 0, 1, 1), depth=depth,
                          attributes={"color": color})
    fp = _measure(template, mask.astype(bool))
    if fp is None:
        return frames
    return [replace(f, objects=(*f.objects, fp)) for f in frames]
