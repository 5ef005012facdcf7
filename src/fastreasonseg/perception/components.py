"""The models one twin builder uses, loaded once on first use, and helpers the builders share.

``ComponentSet`` holds the detector, the image segmenter, the video tracker and the depth
estimator. Each is loaded from the config the first time it is needed, or injected (tests
pass stand-ins that return controlled model outputs, and a Ray worker builds one set per
process). ``check_available`` names every missing model at once before anything loads.
The video tracker follows ``config.video_mode``: SAM 2 propagation (``propagate``) or the box
tracker over the image segmenter (``detect``), which then serves images and videos alike.
Loaded models get the config's device, weight dtype and bf16 autocast (``config.autocast``,
resolved for this machine by :func:`~fastreasonseg.perception.loading.resolve_autocast`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fastreasonseg.perception.config import PerceptionConfig
from fastreasonseg.perception.detector import OwlDetector
from fastreasonseg.perception.ops import depth_stats
from fastreasonseg.perception.vocabulary import build_vocabulary
from fastreasonseg.twin.core import TwinObject, make_object
from fastreasonseg.twin.masks import mask_box


class ComponentSet:
    """The loaded models one builder uses; ``None`` components are loaded on first use."""

    def __init__(self, config: PerceptionConfig, *, detector: Any = None, segmenter: Any = None, tracker: Any = None,
                 depth: Any = None):
        self.config = config
        self._detector = detector
        self._segmenter = segmenter
        self._tracker = tracker
        self._depth = depth
        self._device: str | None = None
        self._dtype: Any = None
        self._autocast: Any = None

    def _placement(self) -> tuple[str, Any]:
        if self._device is None:
            from fastreasonseg.perception.loading import resolve_autocast, resolve_device, resolve_dtype

            device = resolve_device(self.config.device)
            self._dtype = resolve_dtype(self.config.dtype, device)
            self._autocast = resolve_autocast(self.config.autocast, device)
            self._device = device
        return self._device, self._dtype

    @property
    def autocast_dtype(self) -> Any:
        """The dtype the loaded models autocast to (``torch.bfloat16``), or None; see ``PerceptionConfig.autocast``."""
        self._placement()
        return self._autocast

    def placement_record(self) -> dict[str, str]:
        """What ran on this machine: ``{"device", "dtype", "autocast"}`` as strings (twin metadata's ``ran``)."""
        from fastreasonseg.perception.loading import dtype_name

        device, dtype = self._placement()
        return {"device": device, "dtype": dtype_name(dtype), "autocast": dtype_name(self._autocast)}

    def check_available(self, video: bool) -> None:
        """Fail early, naming every missing model at once, before any model is loaded."""
        from fastreasonseg.perception.loading import check_models_available

        needed = {}
        if self._detector is None:
            needed["detector"] = self.config.detector_model
        if video:  # the detect mode's tracker wraps the image segmenter, loaded or injected
            needs_sam = self._tracker is None and (self.config.video_mode == "propagate" or self._segmenter is None)
        else:
            needs_sam = self._segmenter is None
        if needs_sam:
            needed["segmenter"] = self.config.segmenter_model
        if self._depth is None and self.config.depth_model:
            needed["depth"] = self.config.depth_model
        check_models_available(needed, local_files_only=self.config.local_files_only)

    @property
    def detector(self) -> Any:
        if self._detector is None:
            device, dtype = self._placement()
            cfg = self.config
            self._detector = OwlDetector.from_pretrained(
                cfg.detector_model, device=device, dtype=dtype, local_files_only=cfg.local_files_only,
                prompt_template=cfg.prompt_template, score_threshold=cfg.score_threshold, nms_iou=cfg.nms_iou,
                merge_iou=cfg.merge_iou, max_detections=cfg.max_objects, input_size=cfg.detector_input_size,
                autocast_dtype=self._autocast)
        return self._detector

    @property
    def segmenter(self) -> Any:
        if self._segmenter is None:
            from fastreasonseg.perception.segmenter import Sam2ImageSegmenter

            device, dtype = self._placement()
            self._segmenter = Sam2ImageSegmenter.from_pretrained(
                self.config.segmenter_model, device=device, dtype=dtype, local_files_only=self.config.local_files_only,
                input_size=self.config.segmenter_input_size, autocast_dtype=self._autocast)
        return self._segmenter

    @property
    def tracker(self) -> Any:
        if self._tracker is None and self.config.video_mode == "detect":
            from fastreasonseg.perception.box_tracker import BoxPromptTracker

            self._tracker = BoxPromptTracker(self.segmenter)
        elif self._tracker is None:
            from fastreasonseg.perception.tracker import Sam2VideoTracker

            device, dtype = self._placement()
            self._tracker = Sam2VideoTracker.from_pretrained(
                self.config.segmenter_model, device=device, dtype=dtype, local_files_only=self.config.local_files_only,
                offload_state_to_cpu=self.config.offload_state_to_cpu, input_size=self.config.segmenter_input_size)
        return self._tracker

    @property
    def depth(self) -> Any:
        if self._depth is None and self.config.depth_model:
            from fastreasonseg.perception.depth import DepthEstimator

            device, dtype = self._placement()
            self._depth = DepthEstimator.from_pretrained(self.config.depth_model, device=device, dtype=dtype,
                                                         local_files_only=self.config.local_files_only,
                                                         input_size=self.config.depth_input_size,
                                                         autocast_dtype=self._autocast)
        return self._depth


def resolve_labels(config: PerceptionConfig, extra_labels: Sequence[str] = (), queries: Sequence[str] = ()) -> list[str]:
    """The label list for one input: config vocabulary + call-specific labels + query nouns."""
    labels = build_vocabulary(use_default=config.use_default_vocabulary, vocabulary_file=config.vocabulary_file,
                              extra_labels=[*config.extra_labels, *extra_labels], queries=queries,
                              query_nouns=config.query_nouns)
    if not labels:
        raise ValueError("no labels to detect: the vocabulary is empty and the query gave no nouns")
    return labels


def object_from_mask(object_id: int, label: str, score: float, mask: np.ndarray, depth_map: np.ndarray | None,
                     attributes: dict[str, Any]) -> TwinObject:
    """A twin object with box, area and centroid from ``mask`` and depth stats inside it."""
    box = mask_box(mask)
    if box is None:
        raise ValueError("object_from_mask needs a non-empty mask")
    stats = depth_stats(depth_map, mask) if depth_map is not None else None
    return make_object(object_id, label, min(1.0, max(0.0, score)), box, mask=mask, depth=stats,
                       attributes=attributes)
