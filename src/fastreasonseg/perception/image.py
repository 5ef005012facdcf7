"""Image -> digital twin: OWLv2 boxes, SAM 2 masks, Depth Anything V2 depth (the paper's perception stack).

``ImageTwinBuilder`` loads its models once and builds many twins. The steps (paper, Sec. 3):

1. OWLv2 detects every vocabulary label; class-aware NMS and cross-label duplicate merging
   (:mod:`fastreasonseg.perception.detector`).
2. SAM 2 turns each box into a mask. Masks that overlap more than ``merge_iou`` are merged
   (the best-scoring label wins, the others go to ``attributes["alt_labels"]``); masks smaller
   than ``min_mask_area`` pixels are dropped, counted in the log, never silently replaced.
3. Depth Anything V2 gives a dense map, normalised to 0 = nearest .. 1 = farthest in the image;
   each object gets the mean and std inside its mask.

Object ids are 0..N-1 in order of decreasing detection score. Each object's box is the tight
box of its mask (the detector's box is kept in ``attributes["detector_box"]``).
The components are injected, so tests can drive the builder with stand-in model outputs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastreasonseg.perception.components import ComponentSet, object_from_mask, resolve_labels
from fastreasonseg.perception.config import PerceptionConfig
from fastreasonseg.perception.detector import Detection
from fastreasonseg.twin.core import DigitalTwin, Frame, Source, TwinObject

log = logging.getLogger(__name__)


def merge_masks(detections: list[Detection], masks: np.ndarray, iou_threshold: float) -> list[int]:
    """Indices of detections kept after merging near-identical masks (input best-first)."""
    kept: list[int] = []
    areas = masks.reshape(len(masks), -1).sum(axis=1)
    for i in range(len(detections)):
        duplicate_of = None
        for k in kept:
            inter = np.logical_and(masks[i], masks[k]).sum()
            union = areas[i] + areas[k] - inter
            if union > 0 and inter / union > iou_threshold:
                duplicate_of = k
                break
        if duplicate_of is None:
            kept.append(i)
            continue
        winner = detections[duplicate_of]
        for label in [detections[i].label, *detections[i].alt_labels]:
            if label != winner.label and label not in winner.alt_labels:
                winner.alt_labels.append(label)
    return kept


class ImageTwinBuilder:
    """Builds image twins; models load once (lazily) and serve every call."""

    def __init__(self, config: PerceptionConfig | None = None, *, detector: Any = None, segmenter: Any = None,
                 depth: Any = None, components: ComponentSet | None = None):
        self.config = config or (components.config if components is not None else PerceptionConfig())
        self.components = components or ComponentSet(self.config, detector=detector, segmenter=segmenter, depth=depth)

    def check_available(self) -> None:
        self.components.check_available(video=False)

    def build(self, image: np.ndarray | str | Path, *, source_path: str | None = None,
              extra_labels: Sequence[str] = (), queries: Sequence[str] = ()) -> DigitalTwin:
        """Twin of one image (an (H, W, 3) uint8 RGB array or an image file)."""
        from fastreasonseg.perception.media import read_image

        if not isinstance(image, np.ndarray):
            source_path = source_path or str(image)
            image = read_image(image)
        labels = resolve_labels(self.config, extra_labels, queries)
        objects = self.objects_for_frame(image, labels)
        height, width = image.shape[:2]
        source = Source(kind="image", width=width, height=height, num_frames=1, path=source_path, fps=None)
        return DigitalTwin(source=source, frames=(Frame(index=0, time=0.0, objects=tuple(objects)),),
                           metadata=self.config.twin_metadata(self.components.placement_record()))

    def objects_for_frame(self, image: np.ndarray, labels: Sequence[str], first_id: int = 0) -> list[TwinObject]:
        """Detect, segment and measure depth on one RGB frame."""
        detections = self.components.detector.detect(image, labels)
        if not detections:
            return []
        result = self.components.segmenter.segment(image, np.array([d.box for d in detections]))
        masks = result.masks
        areas = masks.reshape(len(masks), -1).sum(axis=1)
        small = [i for i in range(len(detections)) if areas[i] < self.config.min_mask_area]
        if small:
            log.info("dropped %d detection(s) whose SAM 2 mask has fewer than %d pixels: %s", len(small),
                     self.config.min_mask_area, ", ".join(detections[i].label for i in small))
        candidates = [i for i in range(len(detections)) if areas[i] >= self.config.min_mask_area]
        kept_local = merge_masks([detections[i] for i in candidates], masks[candidates], self.config.merge_iou)
        kept = [candidates[k] for k in kept_local]
        depth_estimator = self.components.depth
        depth_map = depth_estimator.estimate(image) if depth_estimator is not None and kept else None
        objects = []
        for new_id, i in enumerate(kept, start=first_id):
            det = detections[i]
            attributes: dict[str, Any] = {"detector_box": [round(v, 2) for v in det.box],
                                          "mask_iou": round(float(result.iou_scores[i]), 4)}
            if det.alt_labels:
                attributes["alt_labels"] = list(det.alt_labels)
            objects.append(object_from_mask(new_id, det.label, det.score, masks[i], depth_map, attributes))
        return objects
