"""Oracle twins: digital twins built from ground-truth annotations instead of perception models.

Used to separate reasoning errors from perception errors in evaluation (the reasoner reads a
perfect twin), and to build training twins from annotated videos as RVTBench did.

Formats:

- **COCO** instance JSON (``images``, ``annotations``, ``categories``): one image twin per
  image; polygons, uncompressed (crowd) and compressed RLE are all accepted.
- **DAVIS** indexed PNG folders (``Annotations/<video>/<frame>.png``, palette images where the
  pixel value is the object id, 0 background, 255 void): one video twin per folder.
- **ReVOS** ``meta_expressions*.json`` (videos -> frames, expressions with ``anno_id``) plus
  ``mask_dict.json`` (anno_id -> one RLE or null per frame): one video twin per video.

Object ids are the dataset's own: the COCO annotation id, the DAVIS pixel value, the ReVOS
``anno_id``; so ground-truth answers map onto twin ids with no lookup table. Labels are the
COCO category names; DAVIS and ReVOS carry no categories, so their objects are labelled
``"object"`` unless a ``labels`` map is given. Depth is empty, or taken from a depth model
(:class:`~fastreasonseg.perception.depth.DepthEstimator`) when one and the images are given.
Expression texts are never copied into the twin: that would hand the reasoner the answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fastreasonseg.perception.media import IMAGE_SUFFIXES, read_image
from fastreasonseg.perception.ops import depth_stats
from fastreasonseg.twin.core import DigitalTwin, Frame, Source, TwinObject, make_object
from fastreasonseg.twin.masks import box_to_mask, decode_mask, mask_box, normalize_rle

DEFAULT_LABEL = "object"


class AnnotationError(ValueError):
    """Annotation files that cannot be turned into twins; the message names the file and the field."""


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def _find_image(root: Path | None, name: str) -> Path | None:
    """``root/name``, or ``root/<stem>.<any image suffix>`` (DAVIS/ReVOS frames are .jpg, masks .png)."""
    if root is None:
        return None
    direct = root / name
    if direct.is_file():
        return direct
    stem = Path(name).stem
    for suffix in sorted(IMAGE_SUFFIXES):
        candidate = root / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _depth_for(depth: Any, image_path: Path | None, height: int, width: int, where: str) -> np.ndarray | None:
    if depth is None:
        return None
    if image_path is None:
        raise AnnotationError(f"{where}: depth was requested but the image was not found (pass the images folder)")
    image = read_image(image_path)
    if image.shape[:2] != (height, width):
        raise AnnotationError(f"{where}: image {image_path} is {image.shape[1]}x{image.shape[0]} but the annotation "
                              f"is {width}x{height}")
    return depth.estimate(image)


def _object(object_id: int, label: str, mask: np.ndarray, depth_map: np.ndarray | None,
            attributes: dict[str, Any] | None = None) -> TwinObject | None:
    box = mask_box(mask)
    if box is None:
        return None
    stats = depth_stats(depth_map, mask) if depth_map is not None else None
    return make_object(object_id, label, 1.0, box, mask=mask, depth=stats, attributes=attributes)


# --------------------------------------------------------------------------- COCO


def coco_segmentation_mask(segmentation: Any, height: int, width: int, where: str) -> np.ndarray | None:
    """A COCO ``segmentation`` (polygons, list-count RLE or string RLE) as an (H, W) bool mask; None if empty."""
    from pycocotools import mask as mask_utils

    if segmentation in (None, [], {}):
        return None
    try:
        if isinstance(segmentation, list):
            polygons = [p for p in segmentation if isinstance(p, list) and len(p) >= 6]
            if not polygons:
                return None
            rles = mask_utils.frPyObjects(polygons, height, width)
            rle = mask_utils.merge(rles)
            return mask_utils.decode(rle).astype(bool)
        if isinstance(segmentation, dict):
            size = [int(v) for v in segmentation.get("size", [height, width])]
            if size != [height, width]:
                raise AnnotationError(f"{where}: segmentation size {size} differs from the image's [{height}, {width}]")
            return decode_mask(normalize_rle({"size": size, "counts": segmentation["counts"]}))
    except AnnotationError:
        raise
    except Exception as exc:  # pycocotools raises assorted types on malformed input
        raise AnnotationError(f"{where}: unreadable segmentation ({type(exc).__name__}: {exc})") from None
    raise AnnotationError(f"{where}: segmentation must be polygons or an RLE dict, got {type(segmentation).__name__}")


class CocoAnnotations:
    """A COCO instances file; ``twin(name)`` builds one image's twin (name = the image file's stem)."""

    kind = "coco"

    def __init__(self, instances_json: str | Path, *, images_root: str | Path | None = None,
                 include_crowd: bool = True):
        self.path = Path(instances_json)
        data = _read_json(self.path)
        if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(
                data.get("annotations"), list):
            raise AnnotationError(f"{self.path}: not a COCO instances file (needs 'images' and 'annotations' lists)")
        self.images_root = Path(images_root) if images_root is not None else None
        self.include_crowd = include_crowd
        self.categories = {c.get("id"): str(c.get("name", DEFAULT_LABEL)) for c in data.get("categories", [])
                           if isinstance(c, dict)}
        self.by_image: dict[Any, list[dict]] = {}
        for k, ann in enumerate(data["annotations"]):
            if not isinstance(ann, dict) or "image_id" not in ann:
                raise AnnotationError(f"{self.path}: annotations[{k}] has no image_id")
            self.by_image.setdefault(ann["image_id"], []).append(ann)
        self.images: dict[str, tuple[int, dict]] = {}
        for k, info in enumerate(data["images"]):
            name = Path(str(info.get("file_name", f"image_{k}"))).stem if isinstance(info, dict) else f"image_{k}"
            self.images.setdefault(name, (k, info))

    def names(self) -> list[str]:
        return list(self.images)

    def twin(self, name: str, depth: Any = None) -> DigitalTwin:
        k, info = self.images[name]
        where = f"{self.path}: images[{k}]"
        try:
            height, width = int(info["height"]), int(info["width"])
            file_name = str(info["file_name"])
        except (KeyError, TypeError, ValueError):
            raise AnnotationError(f"{where}: needs integer 'height', 'width' and a 'file_name'") from None
        image_path = _find_image(self.images_root, file_name)
        annotations = self.by_image.get(info.get("id"), [])
        depth_map = _depth_for(depth, image_path, height, width, where) if annotations else None
        objects = []
        for ann in annotations:
            if not self.include_crowd and ann.get("iscrowd"):
                continue
            objects.append(self._object(ann, height, width, depth_map))
        source = Source(kind="image", width=width, height=height, num_frames=1,
                        path=str(image_path) if image_path else file_name)
        return DigitalTwin(source=source, frames=(Frame(index=0, time=0.0, objects=tuple(objects)),))

    def _object(self, ann: dict, height: int, width: int, depth_map: np.ndarray | None) -> TwinObject:
        where = f"{self.path}: annotation id {ann.get('id')}"
        label = self.categories.get(ann.get("category_id"), DEFAULT_LABEL)
        object_id = ann.get("id")
        if isinstance(object_id, bool) or not isinstance(object_id, int) or object_id < 0:
            raise AnnotationError(f"{where}: 'id' must be a non-negative integer")
        attributes = {"iscrowd": 1} if ann.get("iscrowd") else {}
        mask = coco_segmentation_mask(ann.get("segmentation"), height, width, where)
        if mask is not None:
            obj = _object(object_id, label, mask, depth_map, attributes)
            if obj is not None:
                return obj
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4):
            raise AnnotationError(f"{where}: no usable segmentation and no [x, y, w, h] bbox")
        x, y, w, h = (float(v) for v in bbox)
        # No mask: the box is the mask (DESIGN), so depth statistics come from the box region.
        stats = depth_stats(depth_map, box_to_mask((x, y, x + w, y + h), height, width)) if depth_map is not None else None
        return make_object(object_id, label, 1.0, (x, y, x + w, y + h), depth=stats, attributes=attributes)


# --------------------------------------------------------------------------- DAVIS


def read_index_png(path: Path) -> np.ndarray:
    """A DAVIS-style annotation PNG as an (H, W) integer array of object ids."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L", "I", "I;16"):
                raise AnnotationError(f"{path}: expected an indexed (palette) or grayscale PNG where pixel value = "
                                      f"object id, got mode {image.mode}")
            return np.asarray(image).astype(np.int64)
    except (OSError, UnidentifiedImageError) as exc:
        raise AnnotationError(f"{path}: cannot read annotation PNG ({exc})") from None


def davis_twin(annotation_dir: str | Path, *, images_dir: str | Path | None = None,
               labels: Mapping[int, str] | None = None, depth: Any = None, fps: float | None = None,
               void_value: int = 255) -> DigitalTwin:
    """The twin of one DAVIS video: ``annotation_dir`` holds one indexed PNG per frame."""
    folder = Path(annotation_dir)
    pngs = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png") if folder.is_dir() else []
    if not pngs:
        raise AnnotationError(f"{folder}: no annotation PNGs (expected Annotations/<video>/<frame>.png)")
    frames_dir = Path(images_dir) if images_dir is not None else None
    frames: list[Frame] = []
    size: tuple[int, int] | None = None
    for index, png in enumerate(pngs):
        ids = read_index_png(png)
        if size is None:
            size = ids.shape[:2]
        elif ids.shape[:2] != size:
            raise AnnotationError(f"{png}: frame is {ids.shape[1]}x{ids.shape[0]}, earlier frames are {size[1]}x{size[0]}")
        present = [int(v) for v in np.unique(ids) if v != 0 and v != void_value]
        depth_map = _depth_for(depth, _find_image(frames_dir, png.name), size[0], size[1], str(png)) if present else None
        objects = []
        for object_id in present:
            label = (labels or {}).get(object_id, DEFAULT_LABEL)
            obj = _object(object_id, label, ids == object_id, depth_map)
            if obj is not None:
                objects.append(obj)
        time = index / fps if fps else float(index)
        frames.append(Frame(index=index, time=time, objects=tuple(objects)))
    assert size is not None
    source = Source(kind="video", width=int(size[1]), height=int(size[0]), num_frames=len(frames),
                    path=str(frames_dir or folder), fps=fps)
    return DigitalTwin(source=source, frames=tuple(frames))


class DavisAnnotations:
    """A DAVIS ``Annotations`` folder of video folders (or one video folder); ``twin(video)``."""

    kind = "davis"

    def __init__(self, annotations_root: str | Path, *, images_root: str | Path | None = None,
                 labels: Mapping[str, Mapping[int, str]] | None = None, fps: float | None = None):
        self.root = Path(annotations_root)
        if not self.root.is_dir():
            raise AnnotationError(f"{self.root}: not a folder")
        videos = sorted(p for p in self.root.iterdir() if p.is_dir())
        self.single = not videos and any(p.suffix.lower() == ".png" for p in self.root.iterdir())
        if self.single:
            videos = [self.root]
        if not videos:
            raise AnnotationError(f"{self.root}: no video folders of annotation PNGs")
        self.videos = {v.name: v for v in videos}
        self.images_root = Path(images_root) if images_root is not None else None
        self.labels = labels or {}
        self.fps = fps

    def names(self) -> list[str]:
        return list(self.videos)

    def twin(self, name: str, depth: Any = None) -> DigitalTwin:
        images_dir = None
        if self.images_root is not None:
            images_dir = self.images_root if self.single else self.images_root / name
        return davis_twin(self.videos[name], images_dir=images_dir, labels=self.labels.get(name), depth=depth,
                          fps=self.fps)


# --------------------------------------------------------------------------- ReVOS


def load_revos(meta_expressions: str | Path, mask_dict: str | Path | None = None) -> tuple[dict, dict]:
    """The ``videos`` table of a ReVOS meta file and its ``mask_dict`` (default: mask_dict.json beside it)."""
    meta_path = Path(meta_expressions)
    mask_path = Path(mask_dict) if mask_dict is not None else meta_path.with_name("mask_dict.json")
    meta = _read_json(meta_path)
    videos = meta.get("videos") if isinstance(meta, dict) else None
    if not isinstance(videos, dict):
        raise AnnotationError(f"{meta_path}: not a ReVOS meta_expressions file (needs a 'videos' object)")
    masks = _read_json(mask_path)
    if not isinstance(masks, dict):
        raise AnnotationError(f"{mask_path}: mask_dict must map anno_id -> list of per-frame RLEs")
    return videos, masks


def revos_twin(name: str, video: Mapping[str, Any], masks: Mapping[str, Any], *, images_dir: str | Path | None = None,
               labels: Mapping[int, str] | None = None, depth: Any = None, fps: float | None = None) -> DigitalTwin:
    """The twin of one ReVOS video entry (``{"frames": [...], "expressions": {...}}``)."""
    where = f"video {name!r}"
    frame_names = video.get("frames")
    expressions = video.get("expressions", {})
    if not isinstance(frame_names, list) or not frame_names:
        raise AnnotationError(f"{where}: needs a non-empty 'frames' list")
    if not isinstance(expressions, dict):
        raise AnnotationError(f"{where}: 'expressions' must be an object")
    anno_ids: dict[int, None] = {}
    for exp_id, expression in expressions.items():
        ids = expression.get("anno_id", []) if isinstance(expression, dict) else None
        if not isinstance(ids, list):
            raise AnnotationError(f"{where}: expression {exp_id} has no 'anno_id' list")
        for anno in ids:
            try:
                anno_ids.setdefault(int(anno), None)
            except (TypeError, ValueError):
                raise AnnotationError(f"{where}: expression {exp_id} has a non-integer anno_id {anno!r}") from None
    per_object: dict[int, list] = {}
    size: list[int] | None = None
    for anno in anno_ids:
        rles = masks.get(str(anno))
        if rles is None:
            raise AnnotationError(f"{where}: anno_id {anno} is not in mask_dict")
        if not isinstance(rles, list) or len(rles) != len(frame_names):
            got = len(rles) if isinstance(rles, list) else type(rles).__name__
            raise AnnotationError(f"{where}: mask_dict[{anno}] must list one RLE or null per frame "
                                  f"({len(frame_names)}), got {got}")
        for rle in rles:
            if rle is not None:
                rle_size = [int(v) for v in rle.get("size", [])] if isinstance(rle, dict) else []
                if len(rle_size) != 2:
                    raise AnnotationError(f"{where}: mask_dict[{anno}] holds an RLE without a [height, width] size")
                if size is None:
                    size = rle_size
                elif rle_size != size:
                    raise AnnotationError(f"{where}: mask_dict[{anno}] RLE size {rle_size} differs from {size}")
        per_object[anno] = rles
    frames_dir = Path(images_dir) if images_dir is not None else None
    if size is None:
        first = _find_image(frames_dir, str(frame_names[0]))
        if first is None:
            raise AnnotationError(f"{where}: no masks to read the frame size from; pass the images folder")
        height, width = read_image(first).shape[:2]
        size = [height, width]
    frames = []
    for index, frame_name in enumerate(frame_names):
        visible = [(anno, rles[index]) for anno, rles in per_object.items() if rles[index] is not None]
        depth_map = (_depth_for(depth, _find_image(frames_dir, str(frame_name)), size[0], size[1],
                                f"{where} frame {frame_name}") if visible else None)
        objects = []
        for anno, rle in visible:
            try:
                mask = decode_mask(normalize_rle({"size": size, "counts": rle["counts"]}))
            except Exception as exc:  # pycocotools raises assorted types on corrupt counts
                raise AnnotationError(f"{where}: mask_dict[{anno}] frame {index}: bad RLE ({exc})") from None
            obj = _object(anno, (labels or {}).get(anno, DEFAULT_LABEL), mask, depth_map)
            if obj is not None:
                objects.append(obj)
        time = index / fps if fps else float(index)
        frames.append(Frame(index=index, time=time, objects=tuple(objects)))
    source = Source(kind="video", width=int(size[1]), height=int(size[0]), num_frames=len(frames),
                    path=str(frames_dir) if frames_dir else name, fps=fps)
    return DigitalTwin(source=source, frames=tuple(frames))


class RevosAnnotations:
    """A ReVOS meta_expressions file plus its mask_dict; ``twin(video)``."""

    kind = "revos"

    def __init__(self, meta_expressions: str | Path, mask_dict: str | Path | None = None, *,
                 images_root: str | Path | None = None, labels: Mapping[str, Mapping[int, str]] | None = None,
                 fps: float | None = None):
        path = Path(meta_expressions)
        if path.is_dir():
            metas = sorted(path.glob("meta_expressions*.json"))
            if not metas:
                raise AnnotationError(f"{path}: no meta_expressions*.json in this folder")
            path = metas[0]
        self.videos, self.masks = load_revos(path, mask_dict)
        self.images_root = Path(images_root) if images_root is not None else None
        self.labels = labels or {}
        self.fps = fps

    def names(self) -> list[str]:
        return list(self.videos)

    def twin(self, name: str, depth: Any = None) -> DigitalTwin:
        video = self.videos[name]
        if not isinstance(video, dict):
            raise AnnotationError(f"video {name!r}: expected an object")
        images_dir = self.images_root / name if self.images_root is not None else None
        return revos_twin(name, video, self.masks, images_dir=images_dir, labels=self.labels.get(name), depth=depth,
                          fps=self.fps)


ANNOTATION_FORMATS = {"coco": CocoAnnotations, "davis": DavisAnnotations, "revos": RevosAnnotations}


def open_annotations(kind: str, path: str | Path, *, images_root: str | Path | None = None,
                     **options: Any) -> CocoAnnotations | DavisAnnotations | RevosAnnotations:
    """Open annotations of ``kind`` (coco, davis, revos); each has ``names()`` and ``twin(name, depth=None)``."""
    if kind not in ANNOTATION_FORMATS:
        raise AnnotationError(f"unknown annotation format {kind!r}; use one of {', '.join(ANNOTATION_FORMATS)}")
    return ANNOTATION_FORMATS[kind](path, images_root=images_root, **options)
