"""SAM 2 image masks prompted by boxes (``Sam2Model``), with numpy/PIL preprocessing.

One image-encoder pass per image; every box is decoded in the same mask-decoder call
(single-mask output, as the SAM 2 predictor does for box prompts). The transformers SAM 2
processor needs torchvision, so its three preprocessing steps and its mask upsampling are
done by :mod:`fastreasonseg.perception.ops`; the square input size comes from the model's
config, so a small test model with a 128-pixel input goes through the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fastreasonseg.perception.ops import sam2_preprocess, scale_boxes_to_sam, upsample_mask_logits


def sam2_input_size(config: Any) -> int:
    """The square input side of a ``Sam2Config`` / ``Sam2VideoConfig`` (1024 for the released models)."""
    prompt = getattr(config, "prompt_encoder_config", None)
    size = getattr(prompt, "image_size", None) or getattr(config, "image_size", None) or 1024
    if isinstance(size, (list, tuple)):
        size = size[0]
    return int(size)


@dataclass
class SegmentationResult:
    """Per box: a full-resolution bool mask, SAM's predicted IoU and its object-presence logit."""

    masks: np.ndarray  # (N, H, W) bool
    iou_scores: np.ndarray  # (N,)
    object_logits: np.ndarray  # (N,)


class Sam2ImageSegmenter:
    """Box-prompted SAM 2 masks for single images."""

    def __init__(self, model: Any, *, device: str = "cpu"):
        self.model = model
        self.device = device
        self.size = sam2_input_size(model.config)

    @classmethod
    def from_pretrained(cls, model_id: str, *, device: str = "cpu", dtype: Any = None,
                        local_files_only: bool = False) -> Sam2ImageSegmenter:
        from transformers import Sam2Model
        from transformers.utils import logging as hf_logging

        from fastreasonseg.perception.loading import load_pretrained

        # The released checkpoints are `sam2_video` configs that Sam2Model loads on purpose
        # (the image model is a subset); silence the type-mismatch warning that would scare users.
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            model = load_pretrained(Sam2Model.from_pretrained, model_id, role="segmenter",
                                    local_files_only=local_files_only, **({"dtype": dtype} if dtype is not None else {}))
        finally:
            hf_logging.set_verbosity(verbosity)
        model.to(device).eval()
        return cls(model, device=device)

    @property
    def dtype(self) -> Any:
        return next(self.model.parameters()).dtype

    def segment(self, image: np.ndarray, boxes_xyxy: np.ndarray) -> SegmentationResult:
        """Masks for XYXY pixel ``boxes_xyxy`` ((N, 4)) on ``image`` ((H, W, 3) uint8 RGB)."""
        import torch

        height, width = image.shape[:2]
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return SegmentationResult(np.zeros((0, height, width), dtype=bool), np.zeros(0), np.zeros(0))
        pixels = torch.from_numpy(sam2_preprocess(image, self.size))[None].to(self.device, self.dtype)
        prompts = torch.from_numpy(scale_boxes_to_sam(boxes, height, width, self.size)).float()[None].to(self.device)
        with torch.inference_mode():
            out = self.model(pixel_values=pixels, input_boxes=prompts.to(self.dtype), multimask_output=False)
        low_res = out.pred_masks[0, :, 0].float().cpu()  # (N, h, w) logits
        masks = upsample_mask_logits(low_res, height, width)
        iou = out.iou_scores[0, :, 0].float().cpu().numpy()
        presence = out.object_score_logits[0, :, 0].float().cpu().numpy()
        return SegmentationResult(masks=masks, iou_scores=iou, object_logits=presence)
