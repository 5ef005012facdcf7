"""Depth Anything V2 (``DepthAnythingForDepthEstimation``) -> the twin's normalised depth map.

The relative Depth Anything models output inverse depth (bigger = closer). ``estimate``
resizes the prediction back to the image (bicubic, as the processor's
``post_process_depth_estimation`` does) and converts it with
:func:`fastreasonseg.perception.ops.normalize_depth`: 0 = nearest, 1 = farthest in the frame.
A metric checkpoint (``depth_estimation_type == "metric"``) outputs depth itself, so it is
only min-max normalised, not flipped. Preprocessing is the model's own processor, which
transformers ships with a PIL backend (no torchvision needed).

``autocast_dtype`` (the ``fast`` preset on a CPU with bf16 arithmetic) runs the whole model,
backbone and DPT head, under bf16 autocast; the prediction is resized and normalised in float32.
Unlike a mask, the map is only averaged (each object's mean and spread inside its mask): on the
tiny random test model bf16 moved normalised depth by at most 0.016 of the frame's range, 0.001
on average (0.004 at most with only the backbone in bf16; the head stays under autocast too,
since an averaged map does not need that margin and its convolutions are not free).

``input_size`` replaces the processor's 518 px (the size the image's short side is scaled to,
aspect kept, a multiple of 14); DINOv2 interpolates its position embedding to any such size.
The authors run 518 by default and say larger sizes give finer detail
(DepthAnything/Depth-Anything-V2 ``README.md``); smaller ones, as in the ``fast`` preset, are
this project's speed trade with no published figure.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastreasonseg.perception.loading import autocast_context
from fastreasonseg.perception.ops import normalize_depth


def prediction_to_normalized_depth(predicted: Any, height: int, width: int, *, inverse: bool = True) -> np.ndarray:
    """(h, w) model output (torch tensor) -> (height, width) float32 normalised depth, 0 = nearest."""
    import torch
    import torch.nn.functional as F

    tensor = torch.as_tensor(predicted).float()
    if tensor.ndim == 3:
        tensor = tensor[0]
    if tensor.ndim != 2:
        raise ValueError(f"expected an (h, w) depth prediction, got shape {tuple(tensor.shape)}")
    if tuple(tensor.shape) != (height, width):
        tensor = F.interpolate(tensor[None, None], size=(height, width), mode="bicubic", align_corners=False)[0, 0]
    values = tensor.numpy()
    # normalize_depth flips "bigger = closer"; a metric depth map is flipped first so the flip cancels.
    return normalize_depth(values if inverse else -values)


class DepthEstimator:
    """``estimate(image)`` -> (H, W) float32 normalised depth (0 nearest, 1 farthest in the frame)."""

    def __init__(self, model: Any, processor: Any, *, device: str = "cpu", input_size: int | None = None,
                 autocast_dtype: Any = None):
        self.model = model
        self.processor = processor
        self.device = device
        self.input_size = input_size
        self.autocast_dtype = autocast_dtype  # the whole model's autocast (None: the weights' dtype)
        self.inverse = getattr(model.config, "depth_estimation_type", "relative") != "metric"

    @classmethod
    def from_pretrained(cls, model_id: str, *, device: str = "cpu", dtype: Any = None, local_files_only: bool = False,
                        input_size: int | None = None, autocast_dtype: Any = None) -> DepthEstimator:
        from transformers import AutoImageProcessor, DepthAnythingForDepthEstimation

        from fastreasonseg.perception.loading import load_pretrained

        processor = load_pretrained(AutoImageProcessor.from_pretrained, model_id, role="depth",
                                    local_files_only=local_files_only)
        model = load_pretrained(DepthAnythingForDepthEstimation.from_pretrained, model_id, role="depth",
                                local_files_only=local_files_only, **({"dtype": dtype} if dtype is not None else {}))
        model.to(device).eval()
        return cls(model, processor, device=device, input_size=input_size, autocast_dtype=autocast_dtype)

    def predict_raw(self, image: np.ndarray) -> Any:
        """The model's (h, w) prediction at its own resolution (inverse depth for relative models)."""
        import torch

        size = {"size": {"height": self.input_size, "width": self.input_size}} if self.input_size else {}
        pixel_values = self.processor(images=image, return_tensors="pt", **size)["pixel_values"]
        dtype = next(self.model.parameters()).dtype
        with torch.inference_mode(), autocast_context(self.device, self.autocast_dtype):
            out = self.model(pixel_values=pixel_values.to(self.device, dtype))
        return out.predicted_depth[0].float().cpu()  # resizing and normalising run in float32

    def estimate(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        return prediction_to_normalized_depth(self.predict_raw(image), height, width, inverse=self.inverse)
