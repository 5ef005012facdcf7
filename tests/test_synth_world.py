"""Synthetic world: knowledge base, silhouettes, scene geometry, video motion, perception noise."""

from __future__ import annotations

import numpy as np
import pytest

from fastreasonseg.data.knowledge import (
    COLOR_RGB,
    SCENE_SURFACES,
    SCENE_TYPES,
    SURFACE_TOP_M,
    KnowledgeError,
    load_knowledge,
    parse_categories,
    regular_plural,
)
from fastreasonseg.data.noise import add_noise, parse_noise_level
from fastreasonseg.data.scenes import SceneConfig, generate_scene
from fastreasonseg.data.shapes import SHAPES, draw_shape
from fastreasonseg.twin.masks import decode_mask
from fastreasonseg.twin.tools import run_tool

KB = load_knowledge()


def scene(seed: int, **kwargs):
    return generate_scene(np.random.default_rng(seed), SceneConfig(**kwargs), KB, scene_id=f"s{seed}")


# --------------------------------------------------------------------------- knowledge base


def test_knowledge_base_is_large_and_complete() -> None:
    assert len(KB) >= 300
    for name, cat in KB.categories.items():
        assert cat.uses or cat.facts, name
        assert set(cat.colors) <= set(COLOR_RGB), name
        assert set(cat.places) <= set(SCENE_TYPES), name
        assert cat.shape in SHAPES, f"{name}: shape {cat.shape!r} has no silhouette"
        assert cat.source in {"coco", "lvis", "coco-stuff", "objects365"}
    # every scene type has enough categories to fill a scene
    assert min(len(v) for v in KB.by_place.values()) >= 30
    # all 80 COCO classes are covered (the names detectors trained on COCO output)
    assert sum(cat.source == "coco" for cat in KB.categories.values()) >= 78


@pytest.mark.parametrize(("noun", "plural"), [("cup", "cups"), ("bus", "buses"), ("box", "boxes"),
                                             ("strawberry", "strawberries"), ("toy", "toys"),
                                             ("wine glass", "wine glasses"), ("brush", "brushes")])
def test_regular_plural(noun: str, plural: str) -> None:
    assert regular_plural(noun) == plural


def test_irregular_plurals_come_from_the_file() -> None:
    assert KB["knife"].plural == "knives"
    assert KB["person"].plural == "people"
    assert KB["sheep"].plural == "sheep"


@pytest.mark.parametrize(("entry", "message"), [
    ({"name": "zork", "group": "toy", "uses": ["play"], "colors": ["mauve"], "size": [1, 1], "places": ["park"],
      "source": "lvis"}, "category 'zork'.colors: unknown values ['mauve']"),
    ({"name": "zork", "group": "toy", "colors": ["red"], "size": [1, 1], "places": ["park"], "source": "lvis"},
     "needs at least one of 'uses' or 'facts'"),
    ({"name": "zork", "group": "toy", "uses": ["play"], "colors": ["red"], "size": [0, 1], "places": ["park"],
      "source": "lvis"}, "category 'zork'.size"),
    ({"name": "zork", "group": "toy", "uses": ["play"], "colors": ["red"], "size": [1, 1], "places": ["moon"],
      "source": "lvis"}, "unknown values ['moon']"),
])
def test_bad_knowledge_entries_are_named(entry: dict, message: str) -> None:
    with pytest.raises(KnowledgeError) as info:
        parse_categories([entry])
    assert message in str(info.value)


def test_similar_categories_share_group_or_synonym() -> None:
    similar = KB.similar("knife")
    assert "fork" in similar and "spoon" in similar
    assert all(KB[s].group == "utensil" or set(KB[s].synonyms) & set(KB["knife"].synonyms) for s in similar)
    # unique synonyms never name another category
    for syn in KB.unique_synonyms("couch"):
        assert KB.by_synonym[syn] == ("couch",)


def test_one_set_of_supporting_surfaces() -> None:
    """The surface-tagged categories are the ones scenes put things on and the query generator never calls odd."""
    surfaces = set(KB.with_tag("surface"))
    assert surfaces == set(SURFACE_TOP_M) == {s for options in SCENE_SURFACES.values() for s in options}
    assert set(SCENE_SURFACES) == set(SCENE_TYPES)
    for scene_type, options in SCENE_SURFACES.items():
        assert all(scene_type in KB[s].places for s in options), scene_type


# --------------------------------------------------------------------------- silhouettes


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_silhouette_fills_its_box(shape: str) -> None:
    mask = draw_shape(shape, 60, 50)
    ys, xs = np.nonzero(mask)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (0, 59, 0, 49)
    assert 0.15 < mask.mean() < 1.0 or shape in ("panel", "shelf")  # a shape, not a rectangle (except flat fronts)


def test_directional_silhouettes_mirror() -> None:
    right = draw_shape("quadruped", 40, 30)
    left = draw_shape("quadruped", 40, 30, facing_left=True)
    assert np.array_equal(left, right[:, ::-1]) and not np.array_equal(left, right)


# --------------------------------------------------------------------------- scenes


def test_scene_is_deterministic_per_seed() -> None:
    assert scene(7).twin.to_dict() == scene(7).twin.to_dict()
    assert scene(7).twin.to_dict() != scene(8).twin.to_dict()


@pytest.mark.parametrize("seed", range(6))
def test_masks_boxes_and_occlusion_are_consistent(seed: int) -> None:
    twin = scene(seed).twin
    occupied = np.zeros((twin.source.height, twin.source.width), dtype=int)
    for obj in twin.frames[0].objects:
        mask = decode_mask(obj.mask)
        ys, xs = np.nonzero(mask)
        assert mask.sum() == obj.area >= 30
        assert obj.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert obj.centroid == pytest.approx((xs.mean() + 0.5, ys.mean() + 0.5), abs=0.01)
        assert 0.0 <= obj.depth.mean <= 1.0
        assert obj.attributes["color"] in COLOR_RGB
        occupied += mask
    assert occupied.max() == 1  # visible masks never overlap: nearer objects hide farther ones


def test_perspective_farther_floor_objects_stand_higher() -> None:
    """Within a scene, of two things standing on the floor the farther one's base is higher in the image."""
    agree = total = 0
    for seed in range(30):
        s = scene(seed)
        floor = [o for o in s.twin.frames[0].objects
                 if s.objects[o.id].support == "floor" and KB[o.label].support == "floor"
                 and o.box[3] < s.twin.source.height - 1]
        for i, a in enumerate(floor):
            for b in floor[i + 1:]:
                if abs(a.depth.mean - b.depth.mean) < 0.05:
                    continue
                near, far = (a, b) if a.depth.mean < b.depth.mean else (b, a)
                total += 1
                agree += far.box[3] <= near.box[3] + 1
    # occlusion can raise the visible base of a partly hidden object, so a few pairs disagree
    assert total > 30 and agree / total > 0.9


def test_objects_on_a_surface_stand_on_its_top() -> None:
    checked = 0
    for seed in range(30):
        s = scene(seed, scene_types=("kitchen", "office", "dining_room"))
        frame = s.twin.frames[0]
        for obj in frame.objects:
            surface_id = s.objects[obj.id].surface_id
            surface = frame.object(surface_id) if surface_id is not None else None
            others = [o for o in frame.objects if o.id not in (obj.id, surface_id)]
            if surface is None or any(_boxes_touch(obj.box, o.box) for o in others):
                continue  # a neighbour in front may hide the item's base
            # the item's base lies on the table top, between its back and front edges
            assert surface.box[1] - 1 <= obj.box[3] <= surface.box[3] + 1
            assert obj.box[2] > surface.box[0] - 5 and obj.box[0] < surface.box[2] + 5
            checked += 1
    assert checked > 10


def _boxes_touch(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_video_tracks_keep_ids_and_move() -> None:
    moving_scenes = 0
    for seed in range(8):
        s = scene(seed, video=True)
        twin = s.twin
        assert twin.is_video and len(twin.frames) == 8
        for tid in twin.track_ids:
            labels = {obj.label for _, obj in twin.track(tid)}
            assert len(labels) == 1  # a track is one object
            info = s.objects[tid]
            frames = [i for i, _ in twin.track(tid)]
            if info.motion == "enter":
                assert frames[0] > 0
            if info.motion == "leave":
                assert frames[-1] < twin.frames[-1].index
        movers = [tid for tid in twin.track_ids if run_tool(twin, {"tool": "motion", "args": {"ids": [tid]}})
                  .get("result", {"motion": [{"moves": False}]})["motion"][0]["moves"]]
        moving_scenes += len(movers) >= 2
    assert moving_scenes >= 6


def test_held_out_categories_are_excluded_or_required() -> None:
    banned = frozenset({"dog", "cat", "person"})
    for seed in range(5):
        labels = {o.label for o in scene(seed, exclude_categories=banned, scene_types=("living_room",)).twin.frames[0].objects}
        assert not labels & banned
    required = frozenset({"dog"})
    for seed in range(3):
        labels = {o.label for f in scene(seed, require_one_of=required, scene_types=("park",)).twin.frames for o in f.objects}
        assert "dog" in labels


@pytest.mark.parametrize(("kwargs", "message"), [({"width": 10}, "width/height"), ({"num_frames": 1}, "num_frames"),
                                                 ({"min_objects": 5, "max_objects": 3}, "min_objects"),
                                                 ({"scene_types": ("moon",)}, "unknown scene types")])
def test_scene_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SceneConfig(**kwargs)


# --------------------------------------------------------------------------- noise


@pytest.mark.parametrize(("text", "level"), [("none", 0.0), ("low", 0.3), ("medium", 0.6), ("high", 1.0),
                                             ("0.25", 0.25), (0.5, 0.5), (None, 0.0)])
def test_parse_noise_level(text, level: float) -> None:
    assert parse_noise_level(text) == level


@pytest.mark.parametrize("bad", ["loud", "1.5", "-0.1"])
def test_parse_noise_level_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="noise level"):
        parse_noise_level(bad)


def test_noise_is_deterministic_and_mimics_a_detector() -> None:
    clean = scene(3, video=True).twin
    assert add_noise(clean, 0.0, np.random.default_rng(0)) is clean
    a = add_noise(clean, 1.0, np.random.default_rng(5), kb=KB)
    b = add_noise(clean, 1.0, np.random.default_rng(5), kb=KB)
    assert a.to_dict() == b.to_dict()
    changes = {"missed": 0, "relabelled": 0, "new_ids": 0, "score_drop": 0}
    for seed in range(10):
        noisy = add_noise(clean, 1.0, np.random.default_rng(seed), kb=KB)
        clean_ids, noisy_ids = set(clean.track_ids), set(noisy.track_ids)
        changes["missed"] += len(clean_ids - noisy_ids)
        changes["new_ids"] += len(noisy_ids - clean_ids)
        for tid in clean_ids & noisy_ids:
            if noisy.track(tid)[0][1].label != clean.track(tid)[0][1].label:
                changes["relabelled"] += 1
            if noisy.track(tid)[0][1].score < clean.track(tid)[0][1].score:
                changes["score_drop"] += 1
    assert all(v > 0 for v in changes.values()), changes
