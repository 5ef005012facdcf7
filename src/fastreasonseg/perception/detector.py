"""Open-vocabulary detection with OWLv2 or OWL-ViT (``*ForObjectDetection``), boxes mapped back to pixels.

The detector loads once and answers many images. Text queries ("a photo of a {label}") are
encoded once per label list and cached, so a video's key frames and a folder of images pay
for the image encoder only. Preprocessing is the model's own processor (transformers ships a
PIL/numpy backend for OWL-ViT and OWLv2, so no torchvision is needed). OWLv2's processor pads
the image to a square at the bottom/right, OWL-ViT's resizes it to the square: the box mapping
follows the model type.

``input_size`` runs the detector below its training resolution (the ``fast`` preset runs OWLv2
at 384 instead of 960 px): as the OWL-ViT authors do for variable inference resolution
(google-research/scenic ``owl_vit/README.md``, "Inference speed"), the position-embedding grid
is truncated at the bottom/right (:func:`truncate_owl_positions`) rather than interpolated,
and the box bias is rebuilt for the smaller patch grid. Only sizes up to the training size work.

``autocast_dtype`` (the ``fast`` preset on a CPU with bf16 arithmetic) runs the ViT image
encoder, nearly all of the cost, under bf16 autocast; the class and box heads then run in the
weights' dtype on its output, so scores and boxes are not rounded to bf16's 8-bit mantissa.

``postprocess_detections`` is separate from the model so it can be tested with a controlled
model output: sigmoid of the best label's logit per box, threshold, boxes to image pixels
(:func:`owlv2_boxes_to_pixels` for OWLv2, a per-axis scale for OWL-ViT), class-aware NMS, then
cross-label duplicate merging (a "cup" and a "mug" box on the same object become one detection
with the other label kept as an alternative).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastreasonseg.perception.loading import autocast_context
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
                           max_detections: int, padded_square: bool = True) -> list[Detection]:
    """Raw OWL output for one image -> final detections, best first.

    ``logits``: (num_boxes, num_labels) class logits; ``pred_boxes``: (num_boxes, 4) normalised
    (cx, cy, w, h) relative to the padded square (OWLv2, ``padded_square``) or to the image
    itself (OWL-ViT); (height, width): the original image size.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] != len(labels):
        raise ValueError(f"logits must be (num_boxes, {len(labels)}), got {logits.shape}")
    best = logits.argmax(axis=1)
    # Clipped: masked queries carry float32-min logits, which would overflow exp().
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits[np.arange(len(logits)), best], -60.0, 60.0)))
    boxes = owlv2_boxes_to_pixels(pred_boxes, height, width) if padded_square else \
        _image_boxes_to_pixels(pred_boxes, height, width)
    # Boxes that lie wholly in the padding collapse to zero size after clipping.
    valid = (scores >= score_threshold) & (boxes[:, 2] - boxes[:, 0] >= 1.0) & (boxes[:, 3] - boxes[:, 1] >= 1.0)
    index = np.nonzero(valid)[0]
    if index.size == 0:
        return []
    keep = index[class_aware_nms(boxes[index], scores[index], best[index], nms_iou)]
    detections = [Detection(box=tuple(round(float(v), 2) for v in boxes[k]), label=labels[int(best[k])],
                            score=round(float(scores[k]), 4)) for k in keep]
    return merge_duplicates(detections, merge_iou)[:max_detections]


def _image_boxes_to_pixels(pred_boxes_cxcywh: np.ndarray, height: int, width: int) -> np.ndarray:
    """OWL-ViT normalised (cx, cy, w, h) of the unpadded, squashed image -> XYXY pixels, clipped."""
    boxes = np.asarray(pred_boxes_cxcywh, dtype=np.float64).reshape(-1, 4)
    cx, cy, w, h = boxes[:, 0] * width, boxes[:, 1] * height, boxes[:, 2] * width, boxes[:, 3] * height
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width)
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height)
    return xyxy


def owl_base(model: Any) -> Any:
    """The CLIP-style base model inside an OWLv2 (``.owlv2``) or OWL-ViT (``.owlvit``) detector."""
    base = getattr(model, "owlv2", None)
    if base is None:
        base = getattr(model, "owlvit", None)
    if base is None:
        raise ValueError(f"{type(model).__name__} is neither an OWLv2 nor an OWL-ViT detection model")
    return base


def truncate_owl_positions(model: Any, size: int) -> Any:
    """Make an OWL detector run at ``size`` px by keeping the top-left block of its position grid.

    Returns the model (changed in place). The class-token position is kept; the box bias is
    rebuilt for the smaller grid, so boxes stay normalised to the (smaller) input square.
    """
    import torch

    vision = model.config.vision_config
    patch = int(vision.patch_size)
    native, grid = int(vision.image_size) // patch, int(size) // patch
    if size % patch:
        raise ValueError(f"the detector input size must be a multiple of its patch size {patch}, got {size}")
    if grid > native:
        raise ValueError(f"the detector input size {size} is above its training size {vision.image_size}; OWL "
                         "models only run at their training size or below")
    if grid == native:
        return model
    embeddings = owl_base(model).vision_model.embeddings
    weight = embeddings.position_embedding.weight.detach()
    block = weight[1:].reshape(native, native, -1)[:grid, :grid].reshape(grid * grid, -1)
    kept = torch.cat([weight[:1], block]).clone()
    embeddings.position_embedding = torch.nn.Embedding.from_pretrained(kept, freeze=True)
    embeddings.num_patches = grid * grid
    embeddings.num_positions = grid * grid + 1
    embeddings.register_buffer("position_ids", torch.arange(grid * grid + 1, device=kept.device)[None],
                               persistent=False)
    if hasattr(embeddings, "image_size"):
        embeddings.image_size = size
    vision.image_size = size
    model.num_patches_height = model.num_patches_width = grid
    model.box_bias = model.compute_box_bias(grid, grid).to(model.box_bias.device)
    return model


class OwlDetector:
    """OWLv2 or OWL-ViT over a label vocabulary. ``detect(image, labels)`` -> list of :class:`Detection`."""

    def __init__(self, model: Any, processor: Any, *, device: str = "cpu", prompt_template: str = "a photo of a {}",
                 score_threshold: float = 0.2, nms_iou: float = 0.5, merge_iou: float = 0.85,
                 max_detections: int = 50, input_size: int | None = None, autocast_dtype: Any = None):
        if model is not None and input_size is not None:
            truncate_owl_positions(model, input_size)
        self.model = model
        self.processor = processor
        # OWLv2 pads to a square; OWL-ViT squashes the image into it (a stand-in model counts as OWLv2).
        self.padded_square = model is None or getattr(model.config, "model_type", "owlv2") != "owlvit"
        self.input_size = int(model.config.vision_config.image_size) if model is not None else input_size
        self.device = device
        self.autocast_dtype = autocast_dtype  # the image encoder's autocast (None: the weights' dtype)
        self.prompt_template = prompt_template
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.merge_iou = merge_iou
        self.max_detections = max_detections
        self._text_cache: tuple[tuple[str, ...], Any] | None = None

    @classmethod
    def from_pretrained(cls, model_id: str, *, device: str = "cpu", dtype: Any = None, local_files_only: bool = False,
                        **options: Any) -> OwlDetector:
        """Load an OWLv2 or OWL-ViT checkpoint (the class follows its config's ``model_type``)."""
        from transformers import AutoConfig, AutoProcessor, Owlv2ForObjectDetection, OwlViTForObjectDetection

        from fastreasonseg.perception.loading import load_pretrained

        config = load_pretrained(AutoConfig.from_pretrained, model_id, role="detector", local_files_only=local_files_only)
        model_class = {"owlv2": Owlv2ForObjectDetection, "owlvit": OwlViTForObjectDetection}.get(config.model_type)
        if model_class is None:
            from fastreasonseg.errors import FrsError

            raise FrsError(f"{model_id!r} is a {config.model_type!r} model; the detector must be OWLv2 or OWL-ViT "
                           "(e.g. google/owlv2-base-patch16-ensemble, google/owlvit-base-patch32)")
        processor = load_pretrained(AutoProcessor.from_pretrained, model_id, role="detector",
                                    local_files_only=local_files_only)
        model = load_pretrained(model_class.from_pretrained, model_id, role="detector",
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
            out = owl_base(self.model).get_text_features(input_ids=tokens["input_ids"].to(self.device),
                                                     attention_mask=tokens["attention_mask"].to(self.device))
        embeddings = out.pooler_output if hasattr(out, "pooler_output") else out
        self._text_cache = (key, embeddings)
        return embeddings

    def raw_outputs(self, image: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(logits (boxes, labels), pred_boxes (boxes, 4) normalised cxcywh) for one RGB image."""
        import torch

        if not labels:
            raise ValueError("the detector needs at least one label to look for")
        query = self.text_embeddings(labels)
        square = {"height": self.input_size, "width": self.input_size}
        pixel_values = self.processor.image_processor(images=image, size=square, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            with autocast_context(self.device, self.autocast_dtype):
                feature_map, _ = self.model.image_embedder(pixel_values=pixel_values.to(self.device, self.dtype))
            # The class and box heads run in the weights' dtype: their outputs are thresholded and become boxes.
            feature_map = feature_map.to(self.dtype)
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
                                      max_detections=self.max_detections, padded_square=self.padded_square)
