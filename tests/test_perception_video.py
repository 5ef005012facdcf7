"""Video twins: persistent ids, objects entering and leaving, streaming, bounded SAM 2 memory.

Random SAM 2 weights cannot track anything, so the id-persistence test wraps the real tiny
``Sam2VideoModel`` (its streaming session, memory encoder and our pruning all run) and
replaces only its per-frame output masks/presence scores with the synthetic scene's truth;
OWLv2 is replaced at the level of its raw output (logits and padded-square boxes), so the
real detection post-processing runs. Everything between — key frames, matching, new ids,
track ends, twin assembly — is the production code.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import Sam2VideoModel

from fastreasonseg.perception import VideoTwinBuilder
from fastreasonseg.perception.detector import OwlDetector
from fastreasonseg.perception.testing import first_prompt_box, save_tiny_models
from fastreasonseg.perception.tracker import Sam2VideoTracker
from fastreasonseg.twin import DigitalTwin
from fastreasonseg.twin.masks import mask_box

HEIGHT, WIDTH, FRAMES = 64, 96, 12
RED, BLUE = (220, 30, 30), (30, 30, 220)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py: tiny models, one thread


def scene(t: int) -> dict[str, tuple[int, int, int, int]]:
    """Ground-truth boxes at frame t: a red square moving right that leaves after frame 7,
    and a blue square entering at frame 5 moving left."""
    boxes = {}
    if t <= 7:
        boxes["red"] = (4 + 5 * t, 10, 18 + 5 * t, 24)
    if t >= 5:
        x = 70 - 4 * (t - 5)
        boxes["blue"] = (x, 40, x + 12, 52)
    return boxes


def gt_mask(box: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    x1, y1, x2, y2 = box
    mask[y1:y2, x1:x2] = True
    return mask


def render(t: int) -> np.ndarray:
    image = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    for color, box in scene(t).items():
        image[gt_mask(box)] = RED if color == "red" else BLUE
    return image


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_models(tmp_path_factory.mktemp("tiny_video_models"), score_threshold=0.3,
                            use_default_vocabulary=False, extra_labels=("cup", "knife"), keyframe_interval=2,
                            max_missing_frames=1, min_mask_area=4)


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic_video")
    for t in range(FRAMES):
        Image.fromarray(render(t)).save(folder / f"{t:05d}.png")
    return folder


class ColorDetector(OwlDetector):
    """OWLv2 output stand-in: one query box per colour, red scored as 'cup', blue as 'knife'."""

    def __init__(self, **options):
        super().__init__(model=None, processor=None, **options)
        self.calls = 0

    def raw_outputs(self, image, labels):
        self.calls += 1
        side = max(image.shape[:2])
        logits = np.full((2, len(labels)), -10.0)
        boxes = np.zeros((2, 4))
        for row, (color, label) in enumerate(((RED, "cup"), (BLUE, "knife"))):
            box = mask_box(np.all(image == color, axis=-1))
            if box is None:
                continue
            x1, y1, x2, y2 = box
            logits[row, labels.index(label)] = 4.0
            # normalised (cx, cy, w, h) of the bottom/right padded square, as OWLv2 outputs them
            boxes[row] = [(x1 + x2) / 2 / side, (y1 + y2) / 2 / side, (x2 - x1) / side, (y2 - y1) / side]
        return logits, boxes


class OracleSam2Video(Sam2VideoModel):
    """The real streaming model, with each frame's output masks replaced by the scene's truth."""

    scene_fn = staticmethod(scene)

    def forward(self, inference_session, frame_idx=None, frame=None, **kwargs):
        out = super().forward(inference_session, frame_idx=frame_idx, frame=frame, **kwargs)
        truth = self.scene_fn(out.frame_idx)
        low_h, low_w = out.pred_masks.shape[-2:]
        masks, presence = [], []
        for obj_id in out.object_ids:
            color = self._identity(inference_session, obj_id)
            if color in truth:
                full = torch.from_numpy(gt_mask(truth[color])).float()[None, None]
                low = F.interpolate(full, size=(low_h, low_w), mode="area")[0, 0]
                masks.append(torch.where(low > 0.5, 10.0, -10.0))
                presence.append(5.0)
            else:
                masks.append(torch.full((low_h, low_w), -10.0))
                presence.append(-5.0)
        out.pred_masks = torch.stack(masks)[:, None]
        out.object_score_logits = torch.tensor(presence)
        return out

    def _identity(self, session, obj_id):
        """Which scene object a SAM 2 object is: the one its box prompt covered when it was added."""
        identities = self.__dict__.setdefault("_identities", {})
        if obj_id not in identities:
            frame, box = first_prompt_box(session, obj_id, self.config.image_size, WIDTH, HEIGHT)
            truth = self.scene_fn(frame)
            identities[obj_id] = min(truth, key=lambda c: sum(abs(a - b) for a, b in zip(truth[c], box, strict=True)))
        return identities[obj_id]


def test_ids_persist_objects_enter_and_leave(tiny, frames_dir):
    oracle = OracleSam2Video.from_pretrained(tiny.segmenter_model)
    tracker = Sam2VideoTracker(oracle.eval())
    detector = ColorDetector(score_threshold=0.3)
    builder = VideoTwinBuilder(tiny, detector=detector, tracker=tracker, depth=None)
    progress = []
    twin = builder.build(frames_dir, progress=lambda done, total: progress.append((done, total)))

    assert DigitalTwin.from_json(twin.to_json()) == twin
    assert twin.source.kind == "video" and twin.source.num_frames == FRAMES
    assert [f.index for f in twin.frames] == list(range(FRAMES))
    assert progress[-1] == (FRAMES, FRAMES)
    assert twin.track_ids == [0, 1]
    # Detector ran on key frames only (every 2nd processed frame).
    assert detector.calls == FRAMES // 2

    red = twin.track(0)
    assert [i for i, _ in red] == list(range(8))  # leaves after frame 7
    assert {obj.label for _, obj in red} == {"cup"}
    for index, obj in red:
        assert obj.box == pytest.approx(scene(index)["red"], abs=1.0)

    blue = twin.track(1)
    # Enters at frame 5, found on the next key frame (6), keeps its id until the end.
    assert [i for i, _ in blue] == list(range(6, FRAMES))
    assert {obj.label for _, obj in blue} == {"knife"}
    for index, obj in blue:
        assert obj.box == pytest.approx(scene(index)["blue"], abs=1.0)

    # The red track ended (absent 2 frames > max_missing_frames=1) and was freed from SAM 2's state.
    assert tracker.object_ids == [1]


def test_video_file_stride_and_max_frames_with_tiny_models(tiny, tmp_path):
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (WIDTH, HEIGHT))
    for t in range(FRAMES):
        writer.write(cv2.cvtColor(render(t), cv2.COLOR_RGB2BGR))
    writer.release()
    config = tiny.with_overrides(frame_stride=2, max_frames=4, score_threshold=0.0, keyframe_interval=3)
    twin = VideoTwinBuilder(config).build(path)
    assert [f.index for f in twin.frames] == [0, 2, 4, 6]
    assert [f.time for f in twin.frames] == pytest.approx([0.0, 0.2, 0.4, 0.6])
    assert twin.source.fps == pytest.approx(10.0) and twin.source.num_frames == FRAMES
    assert DigitalTwin.from_json(twin.to_json()) == twin
    for frame in twin.frames:
        for obj in frame.objects:
            assert obj.depth is not None and obj.mask is not None


def test_tracker_memory_stays_bounded_on_a_long_video(tiny):
    tracker = Sam2VideoTracker.from_pretrained(tiny.segmenter_model, device="cpu")
    tracker.start(HEIGHT, WIDTH)
    rng = np.random.default_rng(0)
    counts = []
    for step in range(28):  # the pointer window (15 frames) fills by frame 17
        image = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
        results = tracker.step(image)
        if step == 0:
            results = tracker.add_objects({0: (5, 5, 40, 30), 1: (50, 20, 90, 60)})
        assert set(results) == {0, 1}
        assert all(r.mask.shape == (HEIGHT, WIDTH) for r in results.values())
        counts.append(tracker.stored_frame_count())
    per_object_outputs = 1 + tracker.pointer_frames + 1  # prompted frame + pointer window + current frame
    per_object_memory = 1 + tracker.memory_frames + 1
    assert all(c["pixels"] <= 1 for c in counts)
    assert counts[-1] == counts[20] == {"pixels": 1, "outputs": 2 * per_object_outputs,
                                        "memory": 2 * per_object_memory}
    # Full-resolution mask logits of finished frames are gone.
    outputs = tracker.session.output_dict_per_obj[0]["non_cond_frame_outputs"]
    assert all("high_res_masks" not in entry for idx, entry in outputs.items() if idx < tracker.frame_idx)


def test_removing_a_track_keeps_the_other_ids_right(tiny):
    tracker = Sam2VideoTracker.from_pretrained(tiny.segmenter_model, device="cpu")
    tracker.start(HEIGHT, WIDTH)
    tracker.step(render(0))
    tracker.add_objects({3: (4, 10, 18, 24), 7: (0, 0, 30, 30), 9: (50, 30, 90, 60)})
    tracker.remove_objects([7])
    assert tracker.object_ids == [3, 9]
    results = tracker.step(render(1))
    assert set(results) == {3, 9}
    assert len(tracker.session.output_dict_per_obj) == 2
    new = tracker.add_objects({12: (60, 40, 80, 55)})
    assert set(new) == {3, 9, 12}
    with pytest.raises(ValueError, match="already tracked"):
        tracker.add_objects({9: (0, 0, 5, 5)})
    tracker.remove_objects([3, 9, 12])
    assert tracker.step(render(2)) == {}
