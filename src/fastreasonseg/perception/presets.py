"""Perception presets: ``quality`` (the paper's models at their own input sizes) and ``fast`` (CPU-first).

A preset fills the config fields it names (:data:`PRESET_FIELDS`) unless the caller sets them;
the chosen preset is saved in every perception config and in each twin's
``metadata["perception"]``, so an output always says how it was made.

=========  ==========================  ==========================  ==================  ==============
preset     detector (input px)         segmenter (input px)        depth (short side)  autocast
=========  ==========================  ==========================  ==================  ==============
quality    OWLv2 B/16 ensemble (960)   SAM 2.1 Hiera-Tiny (1024)   DA V2 Small (518)   off
fast       OWLv2 B/16 ensemble (384)   SAM 2.1 Hiera-Tiny (448)    DA V2 Small (252)   auto (bf16 CPU)
=========  ==========================  ==========================  ==================  ==============

Videos: ``quality`` propagates masks with SAM 2's memory (``video_mode="propagate"``); ``fast``
detects every ``keyframe_interval`` frames, takes every frame's masks from the image predictor
and keeps identities by association (``video_mode="detect"``, :mod:`fastreasonseg.perception.box_tracker`).
Both presets use the same three checkpoints, so ``fast`` needs no extra download.

Precision (``autocast``): ``fast`` runs the expensive passes under ``torch.autocast`` to bfloat16
when the CPU has bf16 arithmetic (AVX-512-BF16 or AMX, :func:`fastreasonseg.hardware.cpu_has_bf16`;
on this project's AMD EPYC a bf16 matmul ran 4.4x faster than float32) and stays in float32 on
other CPUs, where bf16 would be ~40x slower. The weights stay float32; what changes:

- OWLv2's ViT image encoder and SAM 2's image encoder (Hiera + FPN) run their matmuls and
  convolutions in bf16 (8-bit mantissa, float32's range; autocast keeps reductions such as
  softmax in float32); their outputs go back to float32, and the detector's class and box
  heads and SAM 2's prompt encoder and mask decoder run in float32, so the logits that are
  thresholded into scores and masks, and the boxes, are not rounded to bf16. On the tiny random
  test models the decoder under bf16 flipped 16% of the mask-logit signs; the encoder alone 0.1%.
- Depth Anything V2 runs wholly under bf16 autocast (its map is only averaged per mask); the prediction is
  resized, normalised and summarised (mean, std per object) in float32.
- Text embeddings (once per label list) and the ``propagate`` mode's SAM 2 video model keep
  float32. On CUDA nothing changes: ``auto`` means off there, the weights are float16 (``dtype``).

Parity with float32 is tested on the tiny models (``tests/test_perception_autocast.py``, stated
tolerances); with real weights it is not measured here (none are reachable). ``autocast off``
(``frs twin build --autocast off``) restores float32; ``quality`` keeps it off, as before.

Published quality of the checkpoints (what a user trades for speed):

- OWLv2 CLIP B/16 ST/FT ensemble (``google/owlv2-base-patch16-ensemble``): LVIS AP 43.9, APr 40.5
  at 960 px. For comparison OWL-ViT v1 CLIP B/32 (``google/owlvit-base-patch32``, 768 px, the
  other CPU candidate: same cost as OWLv2 at 384 px, 24 x 24 patches) has LVIS AP 19.3, APr 16.9.
  Source: the checkpoint table of google-research/scenic ``scenic/projects/owl_vit/README.md``.
  No figure is published for OWLv2 at 384 px; the same README says accuracy is robust to the
  inference image size because OWLv2 is trained with heavy size augmentation, and that smaller
  sizes are run by truncating the position-embedding grid, which is what ``fast`` does
  (:func:`fastreasonseg.perception.detector.truncate_owl_positions`). That is why ``fast`` keeps
  OWLv2 rather than OWL-ViT B/32: less than half the published AP is a poor trade for the same cost.
  ``--detector google/owlvit-base-patch32`` still works (same wrapper).
- SAM 2.1 Hiera-Tiny (``facebook/sam2.1-hiera-tiny``, 38.9 M parameters): J&F 76.5 SA-V test,
  71.8 MOSE val, 77.3 LVOS v2, against 79.5 / 74.6 / 80.6 for Hiera-Large (224.4 M); source:
  the SAM 2.1 checkpoint table of facebookresearch/sam2 ``README.md``. These are video (memory
  propagation) figures at 1024 px. Nothing is published for 448 px or for box prompts without
  memory; expect coarser boundaries (the decoder's low-resolution mask is 112 x 112 instead of 256 x 256).
- Depth Anything V2 Small (``depth-anything/Depth-Anything-V2-Small-hf``, 24.8 M parameters,
  518 px by default; source: DepthAnything/Depth-Anything-V2 ``README.md``). Its benchmark
  tables (DA-2K, zero-shot AbsRel) could not be retrieved here, so none are quoted; nothing is
  published for 252 px. The twin only uses the mean and spread of normalised depth inside each
  mask, which coarse maps keep better than fine structure.

Speed: on a GPU ``quality`` is the right choice. On a CPU ``fast`` does about 8x less work per
640x480 image (FLOPs counted with ``torch.utils.flop_counter`` on the released architectures,
meta tensors: OWLv2 image encoder 1094 GFLOP at 960 px; at 384 px it sees 24 x 24 patches, as
many as OWL-ViT B/32 at 768 px, counted at 113; SAM 2 Hiera-Tiny with 5 boxes 311 -> 47 at
448 px; Depth Anything V2 Small 168 -> 29 at 252 px). 448 px fits Hiera's 14-wide windows at
its third stage exactly, which 512 px does not (68 GFLOP). bf16 autocast changes the cost of
those FLOPs, not their number. Measured seconds come only from ``frs bench efficiency
--perception`` (docs/USAGE.md; its table says which autocast ran), never from this docstring.

Departure from the paper: the paper runs its perception models at their native sizes and
precision on a GPU; ``fast``'s smaller inputs, its bf16 encoders on the CPU and the detect
video mode are this project's additions, and no accuracy figure is published for any of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

PRESET_NAMES = ("quality", "fast")


@dataclass(frozen=True)
class Preset:
    """The config values one preset chooses. ``None`` input sizes mean the checkpoint's own."""

    detector_model: str
    segmenter_model: str
    depth_model: str | None
    detector_input_size: int | None
    segmenter_input_size: int | None
    depth_input_size: int | None
    video_mode: str
    # bf16 autocast of the image encoders: "auto" (where the CPU has bf16 arithmetic) or "off".
    autocast: str


_OWLV2 = "google/owlv2-base-patch16-ensemble"
_SAM2 = "facebook/sam2.1-hiera-tiny"
_DEPTH = "depth-anything/Depth-Anything-V2-Small-hf"

PRESETS: dict[str, Preset] = {
    "quality": Preset(detector_model=_OWLV2, segmenter_model=_SAM2, depth_model=_DEPTH, detector_input_size=None,
                      segmenter_input_size=None, depth_input_size=None, video_mode="propagate", autocast="off"),
    "fast": Preset(detector_model=_OWLV2, segmenter_model=_SAM2, depth_model=_DEPTH, detector_input_size=384,
                   segmenter_input_size=448, depth_input_size=252, video_mode="detect", autocast="auto"),
}

# The PerceptionConfig fields a preset fills in.
PRESET_FIELDS = tuple(asdict(PRESETS["quality"]))


def preset_values(name: str) -> dict[str, Any]:
    """The field values of preset ``name``; a ValueError naming the presets when it is unknown."""
    if name not in PRESETS:
        raise ValueError(f"unknown perception preset {name!r}; choose one of {', '.join(PRESET_NAMES)} "
                         "(quality: the paper's models at full size; fast: CPU-first input sizes and video mode)")
    return asdict(PRESETS[name])
