"""Persistent object ids across a video: SAM 2 streaming propagation with bounded memory.

``Sam2VideoTracker`` drives transformers' ``Sam2VideoModel`` in streaming mode: frames go in
one at a time (never the whole video), objects are prompted with boxes on the frame where they
first appear, and every later frame is segmented from SAM 2's memory of earlier frames.

Memory: the stock inference session keeps every frame's preprocessed pixels (12 MB per frame
at 1024x1024) and every frame's per-object outputs, including full-resolution mask logits —
which is how minute-long clips reach tens of gigabytes. SAM 2 itself only reads back the last
``num_maskmem - 1`` frames' memory features and the last ``max_object_pointers_in_encoder - 1``
frames' object pointers (plus each object's prompted frame). So after every frame the tracker

- drops the pixels of past frames,
- drops the mask logits of past frames (they were already turned into twin masks),
- keeps memory features only for the last ``num_maskmem - 1`` frames and object pointers only
  for the last ``max_object_pointers_in_encoder - 1`` frames, and
- keeps state on the CPU (``state_device``) even when the model runs on an accelerator.

Ended tracks are removed from the session (:meth:`remove_objects`). Memory then depends on the
number of live objects, not on the video's length (``tests/test_perception_video.py`` checks
the number of stored frames stays fixed over a long synthetic video).

Departure from SAM 2's reference video predictor: it propagates over a fully loaded video and
allows prompts on any frame; here prompts are only added on the current frame (new objects
entering), and the session's per-object tables are rebuilt in place to remove ended objects,
which the transformers session has no public method for.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastreasonseg.perception.ops import sam2_preprocess, scale_boxes_to_sam, upsample_mask_logits
from fastreasonseg.perception.segmenter import sam2_input_size

# Per-frame outputs SAM 2 never reads back once the frame is done.
_SPENT_KEYS = ("pred_masks", "high_res_masks")
_MEMORY_KEYS = ("maskmem_features", "maskmem_pos_enc")


@dataclass
class TrackedMask:
    """One object's result on one frame: full-resolution mask and SAM 2's object-presence logit."""

    mask: np.ndarray  # (H, W) bool
    presence_logit: float

    @property
    def present(self) -> bool:
        return self.presence_logit > 0 and bool(self.mask.any())


class Sam2VideoTracker:
    """Streaming SAM 2 video tracking: ``start`` -> (``step``, ``add_objects``, ``remove_objects``)*."""

    def __init__(self, model: Any, *, device: str = "cpu", state_device: str | None = "cpu"):
        self.model = model
        self.device = device
        self.state_device = state_device or device
        self.size = sam2_input_size(model.config)
        config = model.config
        self.memory_frames = max(1, int(getattr(config, "num_maskmem", 7)) - 1)
        self.pointer_frames = max(1, int(getattr(config, "max_object_pointers_in_encoder", 16)) - 1)
        self.session: Any = None
        self.frame_idx = -1
        self.height = self.width = 0
        self._pixels: Any = None

    @classmethod
    def from_pretrained(cls, model_id: str, *, device: str = "cpu", dtype: Any = None, local_files_only: bool = False,
                        offload_state_to_cpu: bool = True, input_size: int | None = None) -> Sam2VideoTracker:
        from transformers import Sam2VideoModel

        from fastreasonseg.perception.segmenter import load_sam2

        model = load_sam2(Sam2VideoModel, model_id, dtype=dtype, local_files_only=local_files_only,
                          input_size=input_size)
        model.to(device).eval()
        return cls(model, device=device, state_device="cpu" if offload_state_to_cpu else device)

    @property
    def dtype(self) -> Any:
        return next(self.model.parameters()).dtype

    # ------------------------------------------------------------------ session
    def start(self, height: int, width: int) -> None:
        """Begin a new video of frames (height, width); forgets every object."""
        from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoInferenceSession

        self.session = Sam2VideoInferenceSession(
            video_height=height, video_width=width, inference_device=self.device,
            inference_state_device=self.state_device, video_storage_device=self.state_device, dtype=self.dtype,
            max_vision_features_cache_size=1)
        self.frame_idx = -1
        self.height, self.width = height, width
        self._pixels = None

    @property
    def object_ids(self) -> list[int]:
        return list(self.session.obj_ids) if self.session is not None else []

    def step(self, image: np.ndarray) -> dict[int, TrackedMask]:
        """Segment every tracked object on the next frame ((H, W, 3) uint8 RGB)."""
        import torch

        if self.session is None:
            raise RuntimeError("call start(height, width) before step()")
        if image.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame size {image.shape[1]}x{image.shape[0]} differs from the video's "
                             f"{self.width}x{self.height}")
        self.frame_idx += 1
        self._prune()
        self._pixels = torch.from_numpy(sam2_preprocess(image, self.size)).to(self.dtype)
        if not self.session.obj_ids:
            return {}
        return self._run()

    def add_objects(self, boxes: dict[int, Iterable[float]]) -> dict[int, TrackedMask]:
        """Prompt new objects (id -> XYXY pixel box) on the current frame; returns every object's mask there."""
        import torch

        if self._pixels is None:
            raise RuntimeError("add_objects() needs a frame: call step() first")
        if not boxes:
            return {}
        existing = set(self.session.obj_ids)
        clash = sorted(set(boxes) & existing)
        if clash:
            raise ValueError(f"object ids {clash} are already tracked")
        for object_id, box in boxes.items():
            scaled = scale_boxes_to_sam(np.asarray(list(box), dtype=np.float64), self.height, self.width, self.size)
            obj_idx = self.session.obj_id_to_idx(int(object_id))
            self.session.add_point_inputs(obj_idx, self.frame_idx, {
                # SAM 2 encodes a box as its two corners with point labels 2 (top-left) and 3 (bottom-right).
                "point_coords": torch.tensor(scaled, dtype=torch.float32).reshape(1, 1, 2, 2),
                "point_labels": torch.tensor([[[2, 3]]], dtype=torch.int32),
            })
            self.session.remove_mask_inputs(obj_idx, self.frame_idx)
        self.session.obj_with_new_inputs = [int(i) for i in boxes]
        # Objects already tracked are re-run on this frame too; the result is the same as
        # before (their memory comes from earlier frames only), at the cost of one decoder pass.
        return self._run()

    def remove_objects(self, object_ids: Iterable[int]) -> None:
        """End the tracks ``object_ids``: their state is freed and they are no longer segmented."""
        drop = {int(i) for i in object_ids}
        session = self.session
        if session is None or not drop & set(session.obj_ids):
            return
        keep = [oid for oid in session.obj_ids if oid not in drop]
        old_index = {oid: session._obj_id_to_idx[oid] for oid in keep}
        for name in ("point_inputs_per_obj", "mask_inputs_per_obj", "output_dict_per_obj", "frames_tracked_per_obj"):
            table = getattr(session, name)
            rebuilt = {new: table[old_index[oid]] for new, oid in enumerate(keep)}
            table.clear()
            table.update(rebuilt)
        session._obj_id_to_idx.clear()
        session._obj_id_to_idx.update(OrderedDict((oid, i) for i, oid in enumerate(keep)))
        session._obj_idx_to_id.clear()
        session._obj_idx_to_id.update(OrderedDict((i, oid) for i, oid in enumerate(keep)))
        session.obj_ids = keep
        session.obj_with_new_inputs = [oid for oid in session.obj_with_new_inputs if oid not in drop]

    # ------------------------------------------------------------------ internals
    def _run(self) -> dict[int, TrackedMask]:
        import torch

        with torch.inference_mode():
            out = self.model(inference_session=self.session, frame=self._pixels, frame_idx=self.frame_idx)
        logits = out.pred_masks.float().cpu()
        logits = logits.reshape(logits.shape[0], logits.shape[-2], logits.shape[-1])
        presence = out.object_score_logits.float().cpu().reshape(-1).numpy()
        masks = upsample_mask_logits(logits, self.height, self.width)
        return {int(oid): TrackedMask(mask=masks[i], presence_logit=float(presence[i]))
                for i, oid in enumerate(out.object_ids)}

    def _prune(self) -> None:
        """Free what SAM 2 will not read again now that frame ``frame_idx`` starts (see module doc)."""
        session = self.session
        current = self.frame_idx
        if session.processed_frames:
            for idx in [i for i in session.processed_frames if i < current]:
                del session.processed_frames[idx]
        for per_object in session.output_dict_per_obj.values():
            for kind in ("cond_frame_outputs", "non_cond_frame_outputs"):
                outputs = per_object[kind]
                for idx in list(outputs):
                    if idx >= current:
                        continue
                    entry = outputs[idx]
                    for key in _SPENT_KEYS:
                        entry.pop(key, None)
                    if kind == "cond_frame_outputs":
                        continue  # an object's prompted frame stays in its memory for the whole track
                    if idx < current - self.pointer_frames:
                        del outputs[idx]
                    elif idx < current - self.memory_frames:
                        for key in _MEMORY_KEYS:
                            entry.pop(key, None)
        for tracked in session.frames_tracked_per_obj.values():
            for idx in [i for i in tracked if i < current - self.pointer_frames]:
                del tracked[idx]

    def stored_frame_count(self) -> dict[str, int]:
        """How many frames' state the session holds (for memory tests and diagnostics)."""
        session = self.session
        if session is None:
            return {"pixels": 0, "outputs": 0, "memory": 0}
        outputs = memory = 0
        for per_object in session.output_dict_per_obj.values():
            for kind in ("cond_frame_outputs", "non_cond_frame_outputs"):
                outputs += len(per_object[kind])
                memory += sum(1 for entry in per_object[kind].values() if "maskmem_features" in entry)
        return {"pixels": len(session.processed_frames or {}), "outputs": outputs, "memory": memory}
