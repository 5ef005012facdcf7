"""Identity switches of both video modes on synthetic moving shapes, through the real builder and trackers.

Five coloured squares move across a 160x120 video: two cross each other, one is static, one
leaves, one moves fast. Random SAM 2 weights cannot segment, so the tiny real models run and
only their output masks are replaced by the scene's truth ("oracle" segmenters); detection is
replaced at the level of OWLv2's raw output, so the real post-processing, key-frame
association (Hungarian), box prediction, re-prompting and twin assembly all run. What is
measured is therefore the tracking logic of each mode, not SAM 2's quality:

- ``propagate``: the oracle keeps each SAM 2 object on the scene object its box prompt covered
  (as SAM 2's memory ideally does), so switches can only come from the builder's bookkeeping;
- ``detect``: the oracle image predictor returns, for each box prompt, the object it covers
  most; identities rest on the predicted boxes and the association, as in the fast preset.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import Sam2Model, Sam2VideoModel

from fastreasonseg.metrics.tracking import identity_switches
from fastreasonseg.perception import VideoTwinBuilder
from fastreasonseg.perception.box_tracker import BoxPromptTracker
from fastreasonseg.perception.detector import OwlDetector
from fastreasonseg.perception.media import VideoFrame
from fastreasonseg.perception.segmenter import Sam2ImageSegmenter
from fastreasonseg.perception.testing import first_prompt_box, save_tiny_models
from fastreasonseg.perception.tracker import Sam2VideoTracker
from fastreasonseg.twin.masks import decode_mask, mask_box

HEIGHT, WIDTH, FRAMES, SIDE = 120, 160, 30, 16
COLORS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30), "yellow": (230, 220, 20),
          "magenta": (200, 30, 200)}
LABELS = {"red": "cup", "blue": "knife", "green": "plate", "yellow": "bowl", "magenta": "fork"}

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py: tiny models, one thread


def positions(t: int) -> dict[str, tuple[int, int]]:
    """Top-left corners at frame t, drawn in this order (later ones cover earlier ones)."""
    out = {"green": (72, 56)}  # static
    out["red"] = (4 + 4 * t, 10)  # moves right ...
    out["blue"] = (140 - 4 * t, 14)  # ... and crosses the blue one moving left, drawn on top
    if t < 24:
        out["yellow"] = (20, 3 * t)  # moves down and leaves at the bottom
    out["magenta"] = (140 - 5 * t, 100 - 3 * t)  # fast, towards the top left
    return {name: (x, y) for name, (x, y) in out.items() if x + SIDE > 0 and y < HEIGHT}


def visible_masks(t: int) -> dict[str, np.ndarray]:
    owner = np.full((HEIGHT, WIDTH), "", dtype=object)
    for name, (x, y) in positions(t).items():
        owner[max(0, y):y + SIDE, max(0, x):x + SIDE] = name
    masks = {name: owner == name for name in COLORS}
    return {name: mask for name, mask in masks.items() if mask.sum() >= 16}


def render(t: int) -> np.ndarray:
    image = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    for name, mask in visible_masks(t).items():
        image[mask] = COLORS[name]
    return image


class ColorDetector(OwlDetector):
    """OWLv2 raw-output stand-in: one query box per visible colour, scored for its label."""

    def __init__(self, **options):
        super().__init__(model=None, processor=None, **options)

    def raw_outputs(self, image, labels):
        side = max(image.shape[:2])
        logits = np.full((len(COLORS), len(labels)), -10.0)
        boxes = np.zeros((len(COLORS), 4))
        for row, (name, color) in enumerate(COLORS.items()):
            box = mask_box(np.all(image == color, axis=-1))
            if box is None:
                continue
            x1, y1, x2, y2 = box
            logits[row, labels.index(LABELS[name])] = 4.0
            boxes[row] = [(x1 + x2) / 2 / side, (y1 + y2) / 2 / side, (x2 - x1) / side, (y2 - y1) / side]
        return logits, boxes


def low_res(mask: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
    full = torch.from_numpy(mask).float()[None, None]
    return torch.where(F.interpolate(full, size=shape, mode="area")[0, 0] > 0.5, 10.0, -10.0)


def covered(box_xyxy, t: int) -> str | None:
    """The scene object with the most visible pixels inside a pixel box at frame t."""
    x1, y1, x2, y2 = (round(v) for v in box_xyxy)
    counts = {name: int(mask[max(0, y1):y2, max(0, x1):x2].sum()) for name, mask in visible_masks(t).items()}
    best = max(counts, key=counts.get, default=None)
    return best if best is not None and counts[best] > 0 else None


class OracleSam2Image(Sam2Model):
    """The real image model; each box prompt's output mask is the object it covers most (frames counted by encodes)."""

    def get_image_embeddings(self, pixel_values, **kwargs):
        self.__dict__["encodes"] = self.__dict__.get("encodes", 0) + 1
        return super().get_image_embeddings(pixel_values, **kwargs)

    def forward(self, *args, input_boxes=None, **kwargs):
        out = super().forward(*args, input_boxes=input_boxes, **kwargs)
        t, size = self.__dict__["encodes"] - 1, self.config.prompt_encoder_config.image_size
        shape = out.pred_masks.shape[-2:]
        masks, presence = [], []
        for box in input_boxes[0].tolist():
            name = covered((box[0] * WIDTH / size, box[1] * HEIGHT / size, box[2] * WIDTH / size,
                            box[3] * HEIGHT / size), t)
            masks.append(low_res(visible_masks(t)[name], shape) if name else torch.full(shape, -10.0))
            presence.append(5.0 if name else -5.0)
        out.pred_masks = torch.stack(masks)[None, :, None]
        out.object_score_logits = torch.tensor(presence)[None, :, None]
        return out


class OracleSam2Video(Sam2VideoModel):
    """The real streaming model; each object's mask is the scene object its box prompt covered when added."""

    def forward(self, inference_session, frame_idx=None, frame=None, **kwargs):
        out = super().forward(inference_session, frame_idx=frame_idx, frame=frame, **kwargs)
        shape = out.pred_masks.shape[-2:]
        truth = visible_masks(out.frame_idx)
        masks, presence = [], []
        for obj_id in out.object_ids:
            name = self._identity(inference_session, obj_id)
            masks.append(low_res(truth[name], shape) if name in truth else torch.full(shape, -10.0))
            presence.append(5.0 if name in truth else -5.0)
        out.pred_masks = torch.stack(masks)[:, None]
        out.object_score_logits = torch.tensor(presence)
        return out

    def _identity(self, session, obj_id):
        identities = self.__dict__.setdefault("_identities", {})
        if obj_id not in identities:
            frame, box = first_prompt_box(session, obj_id, self.config.image_size, WIDTH, HEIGHT)
            identities[obj_id] = covered(box, frame)
        return identities[obj_id]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_models(tmp_path_factory.mktemp("tiny_tracking_models"), score_threshold=0.3, depth_model=None,
                            use_default_vocabulary=False, extra_labels=tuple(LABELS.values()), query_nouns=False,
                            keyframe_interval=5, min_mask_area=16)


def run(tiny, mode: str):
    config = tiny.with_overrides(video_mode=mode)
    detector = ColorDetector(score_threshold=0.3)
    if mode == "detect":
        model = OracleSam2Image.from_pretrained(tiny.segmenter_model).eval()
        tracker = BoxPromptTracker(Sam2ImageSegmenter(model))
    else:
        model = OracleSam2Video.from_pretrained(tiny.segmenter_model).eval()
        tracker = Sam2VideoTracker(model)
    builder = VideoTwinBuilder(config, detector=detector, tracker=tracker, depth=None)
    frames = list(builder.stream(VideoFrame(index=t, time=t / 10, image=render(t)) for t in range(FRAMES)))
    predicted = [{obj.id: decode_mask(obj.mask) for obj in frame.objects} for frame in frames]
    truth = [{list(COLORS).index(name): mask for name, mask in visible_masks(t).items()} for t in range(FRAMES)]
    return identity_switches(truth, predicted), model


def test_identity_switches_count_id_changes_of_matched_objects():
    a, b = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    a[:2, :2], b[2:, 2:] = True, True
    frames = [{0: a, 1: b}, {0: a, 1: b}, {0: a, 1: b}]
    assert identity_switches(frames, [{5: a, 6: b}, {5: a, 6: b}, {6: a, 5: b}]).switches == 2
    assert identity_switches(frames, [{5: a, 6: b}, {}, {5: a, 7: b}]).switches == 1  # lost, found as 7
    counts = identity_switches(frames, [{5: a, 6: b}, {5: a}, {5: a, 6: b}])
    assert (counts.switches, counts.matched, counts.missed) == (0, 5, 1)


def test_identity_switches_of_both_video_modes_on_moving_shapes(tiny, capsys):
    results = {}
    for mode in ("propagate", "detect"):
        counts, model = run(tiny, mode)
        results[mode] = counts
        if mode == "detect":  # the image embedding is computed once per frame, however many prompts
            assert model.__dict__["encodes"] == FRAMES
    with capsys.disabled():
        print("\nidentity switches on the moving-shapes scene (5 objects, 30 frames, key frame every 5): "
              + ", ".join(f"{mode} {c.switches} (matched {c.matched}, missed {c.missed})"
                          for mode, c in results.items()))
    assert results["propagate"].switches == 0
    # The detect mode keeps every identity through the red/blue crossing and the magenta square
    # passing over the static green one (one object, one track; coasting tracks re-matched by
    # their predicted box), and loses one: red, hidden behind yellow for three frames, whose
    # half-covered mask shrank its box so that the next key frame found it as a new object.
    assert results["detect"].switches == 1
    # Each mode finds the objects that enter or reappear only on key frames; both miss little.
    assert all(c.missed <= 0.1 * (c.matched + c.missed) for c in results.values())
