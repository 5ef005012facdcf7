"""Open-vocabulary detection with OWLv2 (``Owlv2ForObjectDetection``), boxes mapped back through the padding.

The detector loads once and answers many images. Text queries ("a photo of a {label}") are
encoded once per label list and cached, so a video's key frames and a folder of images pay
for the image encoder only. Preprocessing is the model's own processor (transformers ships a
PIL/numpy backend for OWLv2, so no torchvision is needed).

``postprocess_detections`` is separate from the model so it can be tested with a controlled
model output: sigmoid of the best label's logit per box, threshold, boxes from the padded
square to image pixels (:func:`owlv2_boxes_to_pixels`), class-aware NMS, then cross-label
duplicate merging (a "cup" and a "mug" box on the same object become one detection with the
other label kept as an alternative).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastreasonseg.perception.ops import box_iou, class_aware_nms, owlv2_boxes_to_pixels


@dataclass
class Detection:
    """One detected object: XYXY pixel box, label, sigmoid score, alternative labels merged into it."""

    box: tuple[float, float, float, float]
    label: str
    score: float
    alt_labels: list[str] = field(default_factory=list)


def merge_duplicates(detections: list[Detection], iou_threshold: float) -> list[Detection]:
    """Merge detections of different labels whose boxes overlap more than ``iou_threshold``.

    Input sorted by descending score; the higher-scoring detection survives and collects the
    other's labels in ``alt_labels``.
    """
    if not detections:
        return []
    boxes = np.array([d.box for d in detections], dtype=np.float64)
    overlaps = box_iou(boxes, boxes)
    kept: list[int] = []
    for i, det in enumerate(detections):
        target = next((k for k in kept if overlaps[k, i] > iou_threshold), None)
        if target is None:
            kept.append(i)
            continue
        winner = detections[target]
        for label in [det.label, *det.alt_labels]:
            if label != winner.label and label not in winner.alt_labels:
                winner.alt_labels.append(label)
    return [detections[k] for k in kept]


def postprocess_detections(logits: np.ndarray, pred_boxes: np.ndarray, labels: Sequence[str], height: int, width: int,
                           *, score_threshold: float, nms_iou: float, merge_iou: float,
                           max_detections: int) -> list[Detection]:
    """Raw OWLv2 output for one image -> final detections, best first.

    ``logits``: (num_boxes, num_labels) class logits; ``pred_boxes``: (num_boxes, 4) normalised
    (cx, cy, w, h) relative to the padded square; (height, width): the original image size.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] != len(labels):
        raise ValueError(f"logits must be (num_boxes, {len(labels)}), got {logits.shape}")
    best = logits.argmax(axis=1)
    # Clipped: masked queries carry float32-min logits, which would overflow exp().
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits[np.arange(len(logits)), best], -60.0, 60.0)))
    boxes = owlv2_boxes_to_pixels(pred_boxes, height, width)
    # Boxes that lie wholly in the padding collapse to zero size after clipping.
    valid = (scores >= score_threshold) & (boxes[:, 2] - boxes[:, 0] >= 1.0) & (boxes[:, 3] - boxes[:, 1] >= 1.0)
    index = np.nonzero(valid)[0]
    if index.size == 0:
        return []
    keep = index[class_aware_nms(boxes[index], scores[index], best[index], nms_iou)]
    detections = [Detection(box=tuple(round(float(v), 2) for v in boxes[k]), label=labels[int(best[k])],
                            score=round(float(scores[k]), 4)) for k in keep]
    return merge_duplicates(detections, merge_iou)[:max_detections]


class Owlv2Detector:
    """OWLv2 over a label vocabulary. ``detect(image, labels)`` -> list of :class:`Detection`."""

    def __init__(self, model: Any, processor: Any, *, device: str = "cpu", prompt_template: str = "a photo of a {}",
                 score_threshold: float = 0.2, nms_iou: float = 0.5, merge_iou: float = 0.85,
                 max_detections: int = 50):
        self.model = model
        self.processor = processor
        self.device = device
        self.prompt_template = prompt_template
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.merge_iou = merge_iou
        self.max_detections = max_detections
        self._text_cache: tuple[tuple[str, ...], Any] | None = None

    @classmethod
    def from_pretrained(cls, model_id: str, *, device: str = "cpu", dtype: Any = None, local_files_only: bool = False,
                        **options: Any) -> Owlv2Detector:
        from transformers import AutoProcessor, Owlv2ForObjectDetection

        from fastreasonseg.perception.loading import load_pretrained

        processor = load_pretrained(AutoProcessor.from_pretrained, model_id, role="detector",
                                    local_files_only=local_files_only)
        model = load_pretrained(Owlv2ForObjectDetection.from_pretrained, model_id, role="detector",
                                local_files_only=local_files_only, **({"dtype": dtype} if dtype is not None else {}))
        model.to(device).eval()
        return cls(model, processor, device=device, **options)

    @property
    def dtype(self) -> Any:
        return next(self.model.parameters()).dtype

    def text_embeddings(self, labels: Sequence[str]) -> Any:
        """(num_labels, dim) query embeddings for ``labels``; cached for the last label list."""
        import torch

        key = tuple(labels)
        if self._text_cache is not None and self._text_cache[0] == key:
            return self._text_cache[1]
        prompts = [self.prompt_template.format(label) for label in labels]
        tokens = self.processor.tokenizer(prompts, padding="max_length", truncation=True, return_tensors="pt")
        with torch.inference_mode():
            out = self.model.owlv2.get_text_features(input_ids=tokens["input_ids"].to(self.device),
                                                     attention_mask=tokens["attention_mask"].to(self.device))
        embeddings = out.pooler_output if hasattr(out, "pooler_output") else out
        self._text_cache = (key, embeddings)
        return embeddings

    def raw_outputs(self, image: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(logits (boxes, labels), pred_boxes (boxes, 4) normalised cxcywh) for one RGB image."""
        import torch

        if not labels:
            raise ValueError("OWLv2 needs at least one label to look for")
        query = self.text_embeddings(labels)
        pixel_values = self.processor.image_processor(images=image, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            feature_map, _ = self.model.image_embedder(pixel_values=pixel_values.to(self.device, self.dtype))
            batch, grid_h, grid_w, hidden = feature_map.shape
            image_feats = feature_map.reshape(batch, grid_h * grid_w, hidden)
            logits, _ = self.model.class_predictor(image_feats, query[None].to(image_feats.dtype), None)
            boxes = self.model.box_predictor(image_feats, feature_map)
        return logits[0].float().cpu().numpy(), boxes[0].float().cpu().numpy()

    def detect(self, image: np.ndarray, labels: Sequence[str]) -> list[Detection]:
        """Detections in pixel XYXY of ``image`` ((H, W, 3) uint8 RGB), best first."""
        logits, boxes = self.raw_outputs(image, labels)
        height, width = image.shape[:2]
        return postprocess_detections(logits, boxes, labels, height, width, score_threshold=self.score_threshold,
                                      nms_iou=self.nms_iou, merge_iou=self.merge_iou,
                                      max_detections=self.max_detections)
