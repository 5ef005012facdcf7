"""SAM 2 image masks prompted by boxes (``Sam2Model``), with numpy/PIL preprocessing.

One image-encoder pass per image (:meth:`Sam2ImageSegmenter.encode`); every box is decoded
in one mask-decoder call on that embedding (:meth:`~Sam2ImageSegmenter.decode`, single-mask
output, as the SAM 2 predictor does for box prompts), so a video frame whose tracks and new
detections are prompted separately still pays for one encoder pass. The transformers SAM 2
processor needs torchvision, so its three preprocessing steps and its mask upsampling are
done by :mod:`fastreasonseg.perception.ops`; the square input size comes from the model's
config, so a small test model with a 128-pixel input goes through the same code.

``autocast_dtype`` (the ``fast`` preset on a CPU with bf16 arithmetic) runs the image encoder
(Hiera + FPN) under bf16 autocast and hands its features to the prompt encoder and mask decoder
in the weights' dtype. The split is measured, not assumed: on the tiny random test model a
decoder under bf16 flipped the sign of 16% of the mask logits (one box's mask IoU 0.18 against
float32), the encoder alone 0.1% (mask IoU >= 0.99). SAM 2's own examples autocast everything
on CUDA (facebookresearch/sam2 ``README.md``); released weights may be less sensitive than random
ones, but the decoder is the cheap part (by a hand count about 1 GFLOP per box at 448 px against
~40 for the encoder), so it keeps the weights' precision.

``input_size`` runs SAM 2 at another square size than the checkpoint's 1024 px
(:func:`sam2_config_at_size`: the prompt encoder, the feature-map sizes and, for the video
model, the memory attention's rotary grid follow it; Hiera interpolates its position
embedding to the feature map). Departure from SAM 2: it is trained and evaluated at 1024 px
only, so no quality figure exists for smaller inputs (``fast`` uses 448 px; see
:mod:`fastreasonseg.perception.presets`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fastreasonseg.perception.loading import autocast_context
from fastreasonseg.perception.ops import sam2_preprocess, scale_boxes_to_sam, upsample_mask_logits


def sam2_input_size(config: Any) -> int:
    """The square input side of a ``Sam2Config`` / ``Sam2VideoConfig`` (1024 for the released models)."""
    prompt = getattr(config, "prompt_encoder_config", None)
    size = getattr(prompt, "image_size", None) or getattr(config, "image_size", None) or 1024
    if isinstance(size, (list, tuple)):
        size = size[0]
    return int(size)


def sam2_config_at_size(config: Any, size: int) -> Any:
    """``config`` (a ``Sam2Config`` or ``Sam2VideoConfig``, changed in place) for square inputs of ``size`` px."""
    if size % 32:
        raise ValueError(f"the SAM 2 input size must be a multiple of 32 pixels, got {size}")
    config.prompt_encoder_config.image_size = size
    vision = config.vision_config
    vision.backbone_feature_sizes = [[size // 4] * 2, [size // 8] * 2, [size // 16] * 2]
    vision.backbone_config.image_size = [size, size]
    if hasattr(config, "image_size"):
        config.image_size = size
    if hasattr(config, "memory_attention_rope_feat_sizes"):
        config.memory_attention_rope_feat_sizes = [size // 16, size // 16]
    return config


def load_sam2(model_class: Any, model_id: str, *, dtype: Any = None, local_files_only: bool = False,
              input_size: int | None = None) -> Any:
    """``Sam2Model`` or ``Sam2VideoModel`` from a checkpoint, optionally at another input size."""
    from transformers.utils import logging as hf_logging

    from fastreasonseg.perception.loading import load_pretrained

    # The released checkpoints are `sam2_video` configs that Sam2Model loads on purpose
    # (the image model is a subset); silence the type-mismatch warning that would scare users.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        options: dict[str, Any] = {"dtype": dtype} if dtype is not None else {}
        if input_size is not None:
            config = load_pretrained(model_class.config_class.from_pretrained, model_id, role="segmenter",
                                     local_files_only=local_files_only)
            if sam2_input_size(config) != input_size:
                options["config"] = sam2_config_at_size(config, input_size)
        return load_pretrained(model_class.from_pretrained, model_id, role="segmenter",
                               local_files_only=local_files_only, **options)
    finally:
        hf_logging.set_verbosity(verbosity)


@dataclass
class ImageEmbedding:
    """One frame's SAM 2 image features, computed once and decoded for any number of box prompts."""

    features: list[Any]  # the encoder's feature maps, finest first (torch tensors)
    height: int
    width: int


@dataclass
class SegmentationResult:
    """Per box: a full-resolution bool mask, SAM's predicted IoU and its object-presence logit."""

    masks: np.ndarray  # (N, H, W) bool
    iou_scores: np.ndarray  # (N,)
    object_logits: np.ndarray  # (N,)


class Sam2ImageSegmenter:
    """Box-prompted SAM 2 masks for single images."""

    def __init__(self, model: Any, *, device: str = "cpu", autocast_dtype: Any = None):
        self.model = model
        self.device = device
        self.autocast_dtype = autocast_dtype  # the image encoder's autocast (None: the weights' dtype)
        self.size = sam2_input_size(model.config)

    @classmethod
    def from_pretrained(cls, model_id: str, *, device: str = "cpu", dtype: Any = None, local_files_only: bool = False,
                        input_size: int | None = None, autocast_dtype: Any = None) -> Sam2ImageSegmenter:
        from transformers import Sam2Model

        model = load_sam2(Sam2Model, model_id, dtype=dtype, local_files_only=local_files_only, input_size=input_size)
        model.to(device).eval()
        return cls(model, device=device, autocast_dtype=autocast_dtype)

    @property
    def dtype(self) -> Any:
        return next(self.model.parameters()).dtype

    def segment(self, image: np.ndarray, boxes_xyxy: np.ndarray) -> SegmentationResult:
        """Masks for XYXY pixel ``boxes_xyxy`` ((N, 4)) on ``image`` ((H, W, 3) uint8 RGB)."""
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            height, width = image.shape[:2]
            return SegmentationResult(np.zeros((0, height, width), dtype=bool), np.zeros(0), np.zeros(0))
        return self.decode(self.encode(image), boxes)

    def encode(self, image: np.ndarray) -> ImageEmbedding:
        """The image encoder's features of ``image`` ((H, W, 3) uint8 RGB): the expensive half, once per image."""
        import torch

        pixels = torch.from_numpy(sam2_preprocess(image, self.size))[None].to(self.device, self.dtype)
        with torch.inference_mode(), autocast_context(self.device, self.autocast_dtype):
            features = self.model.get_image_embeddings(pixels)
        # The decoder runs in the weights' dtype: its logits are thresholded into the masks.
        return ImageEmbedding(features=[f.to(self.dtype) for f in features], height=int(image.shape[0]),
                              width=int(image.shape[1]))

    def decode(self, embedding: ImageEmbedding, boxes_xyxy: np.ndarray) -> SegmentationResult:
        """Masks for XYXY pixel boxes ((N, 4)) on an encoded image, all boxes in one decoder call."""
        import torch

        height, width = embedding.height, embedding.width
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return SegmentationResult(np.zeros((0, height, width), dtype=bool), np.zeros(0), np.zeros(0))
        prompts = torch.from_numpy(scale_boxes_to_sam(boxes, height, width, self.size)).float()[None].to(self.device)
        with torch.inference_mode():
            out = self.model(image_embeddings=embedding.features, input_boxes=prompts.to(self.dtype),
                             multimask_output=False)
        low_res = out.pred_masks[0, :, 0].float().cpu()  # (N, h, w) logits
        masks = upsample_mask_logits(low_res, height, width)
        iou = out.iou_scores[0, :, 0].float().cpu().numpy()
        presence = out.object_score_logits[0, :, 0].float().cpu().numpy()
        return SegmentationResult(masks=masks, iou_scores=iou, object_logits=presence)
