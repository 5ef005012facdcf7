"""Perception presets: config resolution, input sizes through the real models, dtype handling, and the CLI.

The CLI tests put tiny random models with the released input sizes (OWLv2 960, SAM 2 1024,
Depth Anything 518 px) into a Hugging Face cache under the presets' hub ids, so
``frs twin build --preset fast`` and ``frs segment photo.jpg --preset fast`` load
``google/owlv2-base-patch16-ensemble`` etc. through the real hub-id path, offline.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from fastreasonseg.cli.main import main
from fastreasonseg.errors import FrsError
from fastreasonseg.perception import ImageTwinBuilder, PerceptionConfig
from fastreasonseg.perception.association import associate
from fastreasonseg.perception.config import FROM_PRESET
from fastreasonseg.perception.depth import DepthEstimator
from fastreasonseg.perception.detector import OwlDetector, postprocess_detections, truncate_owl_positions
from fastreasonseg.perception.loading import resolve_dtype
from fastreasonseg.perception.presets import PRESETS
from fastreasonseg.perception.segmenter import Sam2ImageSegmenter
from fastreasonseg.perception.testing import install_in_hub_cache, save_tiny_models, save_tiny_owlvit
from fastreasonseg.twin import DigitalTwin

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py: tiny models, one thread

LABELS = ("cup", "knife")


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> PerceptionConfig:
    return save_tiny_models(tmp_path_factory.mktemp("tiny_preset_models"), score_threshold=0.0, max_objects=3,
                            use_default_vocabulary=False, extra_labels=LABELS, min_mask_area=1)


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory) -> Path:
    """A Hugging Face cache holding tiny released-size models under the presets' hub ids."""
    root = tmp_path_factory.mktemp("hub")
    models = save_tiny_models(root / "models", released_sizes=True)
    fast = PRESETS["fast"]
    for folder, repo_id in ((models.detector_model, fast.detector_model), (models.segmenter_model, fast.segmenter_model),
                            (models.depth_model, fast.depth_model)):
        install_in_hub_cache(folder, repo_id, root / "cache")
    return root / "cache"


@pytest.fixture
def offline_hub(monkeypatch, hub_cache):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_cache))
    return hub_cache


# --------------------------------------------------------------------------- config


def test_a_preset_fills_only_the_fields_not_given():
    fast = PerceptionConfig(preset="fast")
    assert (fast.detector_input_size, fast.segmenter_input_size, fast.depth_input_size) == (384, 448, 252)
    assert fast.video_mode == "detect" and fast.detector_model == "google/owlv2-base-patch16-ensemble"
    quality = PerceptionConfig()
    assert (quality.preset, quality.detector_input_size, quality.video_mode) == ("quality", None, "propagate")
    mine = PerceptionConfig(preset="fast", detector_model="/models/owl", depth_model=None, segmenter_input_size=512)
    assert (mine.detector_model, mine.depth_model, mine.segmenter_input_size, mine.depth_input_size) == \
        ("/models/owl", None, 512, 252)
    assert FROM_PRESET not in mine.to_dict().values()


def test_switching_preset_keeps_what_the_user_changed(tmp_path):
    base = PerceptionConfig(detector_model="/models/owl", score_threshold=0.3)
    fast = base.with_overrides(preset="fast")
    assert (fast.preset, fast.detector_model, fast.segmenter_input_size, fast.score_threshold) == \
        ("fast", "/models/owl", 448, 0.3)
    assert fast.with_overrides(preset="quality").segmenter_input_size is None
    path = fast.save(tmp_path / "perception.yaml")
    assert PerceptionConfig.load(path) == fast and yaml.safe_load(path.read_text())["preset"] == "fast"


@pytest.mark.parametrize("values, message", [
    ({"preset": "turbo"}, "preset must be one of quality, fast"),
    ({"segmenter_input_size": 500}, "multiple of 32"),
    ({"depth_input_size": 250}, "multiple of 14"),
    ({"video_mode": "sort"}, "video_mode must be one of propagate, detect"),
])
def test_bad_preset_settings_say_how_to_fix_them(values, message):
    with pytest.raises(ValueError, match=message):
        PerceptionConfig(**values)
    with pytest.raises(ValueError, match="unknown perception preset 'turbo'"):
        PerceptionConfig().with_overrides(preset="turbo")


def test_twin_metadata_records_the_preset_and_round_trips():
    from fastreasonseg.twin import Frame, Source, TwinValidationError

    meta = PerceptionConfig(preset="fast").twin_metadata()
    twin = DigitalTwin(source=Source(kind="image", width=4, height=4), frames=(Frame(0, 0.0),), metadata=meta)
    assert DigitalTwin.from_json(twin.to_json()) == twin and twin.to_dict()["metadata"]["perception"]["preset"] == "fast"
    assert "metadata" not in DigitalTwin(source=twin.source, frames=twin.frames).to_dict()  # old twins unchanged
    with pytest.raises(TwinValidationError, match="metadata"):
        DigitalTwin.from_dict({**twin.to_dict(), "metadata": {"bad": (1, 2)}})


# --------------------------------------------------------------------------- models at other input sizes


def test_owl_position_grid_is_truncated_at_the_bottom_right(tiny):
    detector = OwlDetector.from_pretrained(tiny.detector_model, score_threshold=0.0)
    full = detector.model.owlv2.vision_model.embeddings.position_embedding.weight.detach().clone()
    small = OwlDetector.from_pretrained(tiny.detector_model, score_threshold=0.0, input_size=32)
    kept = small.model.owlv2.vision_model.embeddings.position_embedding.weight.detach()
    grid = full[1:].reshape(4, 4, -1)  # the tiny OWLv2 sees 64 px as 4 x 4 patches
    assert torch.equal(kept[0], full[0]) and torch.equal(kept[1:].reshape(2, 2, -1), grid[:2, :2])
    assert torch.allclose(small.model.box_bias, small.model.compute_box_bias(2, 2))
    logits, boxes = small.raw_outputs(random_image(30, 50), list(LABELS))
    assert logits.shape == (4, 2) and boxes.shape == (4, 4)
    assert all(0 <= d.box[2] <= 50 and 0 <= d.box[3] <= 30 for d in small.detect(random_image(30, 50), list(LABELS)))
    with pytest.raises(ValueError, match="above its training size"):
        truncate_owl_positions(small.model, 128)


def test_owl_vit_loads_by_its_model_type_and_maps_boxes_per_axis(tmp_path):
    folder = save_tiny_owlvit(tmp_path / "owlvit")
    detector = OwlDetector.from_pretrained(str(folder), score_threshold=0.0)
    assert type(detector.model).__name__ == "OwlViTForObjectDetection" and not detector.padded_square
    dets = detector.detect(random_image(40, 100), list(LABELS))
    assert dets and all(0 <= d.box[0] < d.box[2] <= 100 and 0 <= d.box[1] < d.box[3] <= 40 for d in dets)
    # OWL-ViT boxes are fractions of the image itself, OWLv2's of the padded square.
    box = [0.5, 0.5, 0.2, 0.4]
    v1 = postprocess_detections(np.array([[5.0]]), np.array([box]), ["cup"], 40, 100, score_threshold=0.1,
                                nms_iou=0.5, merge_iou=0.9, max_detections=5, padded_square=False)
    v2 = postprocess_detections(np.array([[5.0]]), np.array([box]), ["cup"], 40, 100, score_threshold=0.1,
                                nms_iou=0.5, merge_iou=0.9, max_detections=5)
    assert v1[0].box == pytest.approx((40.0, 12.0, 60.0, 28.0)) and v2[0].box == pytest.approx((40.0, 30.0, 60.0, 40.0))


def test_sam2_encodes_once_and_decodes_like_the_full_forward(tiny):
    segmenter = Sam2ImageSegmenter.from_pretrained(tiny.segmenter_model)
    image, boxes = random_image(48, 80), np.array([[5, 5, 40, 30], [30, 10, 79, 47]])
    result = segmenter.segment(image, boxes)
    from fastreasonseg.perception.ops import sam2_preprocess, scale_boxes_to_sam, upsample_mask_logits

    pixels = torch.from_numpy(sam2_preprocess(image, 128))[None]
    prompts = torch.from_numpy(scale_boxes_to_sam(boxes, 48, 80, 128)).float()[None]
    with torch.inference_mode():
        reference = segmenter.model(pixel_values=pixels, input_boxes=prompts, multimask_output=False)
    assert np.array_equal(result.masks, upsample_mask_logits(reference.pred_masks[0, :, 0], 48, 80))
    assert np.allclose(result.iou_scores, reference.iou_scores[0, :, 0].numpy(), atol=1e-5)


def test_sam2_and_depth_run_at_smaller_input_sizes(tiny):
    segmenter = Sam2ImageSegmenter.from_pretrained(tiny.segmenter_model, input_size=64)
    assert segmenter.size == 64 and segmenter.model.prompt_encoder.image_embedding_size == (4, 4)
    result = segmenter.segment(random_image(48, 80), np.array([[5, 5, 40, 30]]))
    assert result.masks.shape == (1, 48, 80)
    depth = DepthEstimator.from_pretrained(tiny.depth_model, input_size=28)
    assert depth.predict_raw(random_image(60, 90)).shape[0] == 28  # short side, aspect kept (28 x 42)
    assert depth.estimate(random_image(60, 90)).shape == (60, 90)


@pytest.mark.parametrize("detections, tracks, matches, fresh, duplicates", [
    ([[0, 0, 10, 10], [50, 50, 60, 60]], [[1, 1, 11, 11]], {0: 0}, [1], []),
    ([[0, 0, 10, 10], [0, 0, 10, 11]], [[0, 0, 10, 11]], {1: 0}, [], [0]),  # a second box on a track starts nothing
    # one-to-one: the greedy best for detection 0 is track 0, but the best total pairs it with track 1
    ([[0, 0, 10, 10], [0, 0, 6, 10]], [[0, 0, 7, 10], [2, 0, 12, 10]], {0: 1, 1: 0}, [], []),
    ([[0, 0, 10, 10]], [], {}, [0], []),
])
def test_association_is_one_to_one_and_separates_duplicates(detections, tracks, matches, fresh, duplicates):
    result = associate(np.array(detections), np.array(tracks), 0.4)
    assert (result.matches, result.fresh, result.duplicates) == (matches, fresh, duplicates)


# --------------------------------------------------------------------------- devices and dtypes


def test_auto_dtype_is_half_precision_on_cuda_only():
    assert resolve_dtype("auto", "cuda") == torch.float16 and resolve_dtype("auto", "cuda:1") == torch.float16
    assert resolve_dtype("auto", "cpu") == torch.float32 and resolve_dtype("auto", "mps") == torch.float32
    with pytest.raises(FrsError, match="float16 is not supported on the CPU"):
        resolve_dtype("float16", "cpu")


def test_bfloat16_runs_the_fast_pipeline_on_cpu(tiny):
    """The reduced-precision path end to end: models in bf16, image and detect-mode video twins valid."""
    from fastreasonseg.perception import VideoTwinBuilder
    from fastreasonseg.perception.media import VideoFrame

    config = tiny.with_overrides(dtype="bfloat16", video_mode="detect", detector_input_size=32,
                                 segmenter_input_size=64, depth_input_size=28)
    builder = ImageTwinBuilder(config)
    twin = builder.build(random_image(40, 60))
    parts = builder.components
    assert {parts.detector.dtype, parts.segmenter.dtype, next(parts.depth.model.parameters()).dtype} == {torch.bfloat16}
    assert twin.frames[0].objects and DigitalTwin.from_json(twin.to_json()) == twin
    frames = [VideoFrame(index=t, time=t / 5, image=random_image(40, 60, seed=t)) for t in range(4)]
    video = list(VideoTwinBuilder(config, components=parts).stream(frames))
    assert len(video) == 4 and type(parts.tracker).__name__ == "BoxPromptTracker"


# --------------------------------------------------------------------------- the CLI with hub ids


def test_twin_build_with_the_fast_preset_loads_the_hub_ids(offline_hub, tmp_path):
    Image.fromarray(random_image(48, 64)).save(tmp_path / "photo.png")
    out = tmp_path / "twins"
    assert main(["twin", "build", str(tmp_path / "photo.png"), "--out", str(out), "--preset", "fast", "--threshold",
                 "0.0", "--no-default-vocabulary", "--label", "cup", "--quiet"]) == 0
    saved = yaml.safe_load((out / "perception_config.yaml").read_text())
    assert (saved["preset"], saved["detector_model"], saved["segmenter_input_size"]) == \
        ("fast", "google/owlv2-base-patch16-ensemble", 448)
    twin = DigitalTwin.load(out / "photo.json")
    assert twin.metadata["perception"]["preset"] == "fast" and twin.metadata["perception"]["video_mode"] == "detect"


def test_segment_photo_with_the_fast_preset(offline_hub, tmp_path):
    Image.fromarray(random_image(48, 64)).save(tmp_path / "photo.jpg")
    out = tmp_path / "out"
    # An unreachable reasoner: perception runs with the preset's models, the answers are written, the command fails.
    code = main(["segment", str(tmp_path / "photo.jpg"), "-q", "the cup", "--preset", "fast", "-o", str(out),
                 "--reasoner", "openai:m@http://127.0.0.1:9/v1", "--no-overlay"])
    assert code == 1
    details = json.loads((out / "rollout.json").read_text())
    perception = details[0]["perception"]
    assert (perception["preset"], perception["detector_model"], perception["detector_input_size"]) == \
        ("fast", "google/owlv2-base-patch16-ensemble", 384)
    assert json.loads((out / "result.json").read_text())[0]["query"] == "the cup"


def test_missing_fast_weights_name_the_ids_and_how_to_get_them(monkeypatch, tmp_path, capsys):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setenv("COLUMNS", "500")
    Image.fromarray(random_image(20, 20)).save(tmp_path / "photo.jpg")
    assert main(["segment", str(tmp_path / "photo.jpg"), "-q", "the cup", "--preset", "fast", "-o",
                 str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    for needle in ("google/owlv2-base-patch16-ensemble", "facebook/sam2.1-hiera-tiny",
                   "depth-anything/Depth-Anything-V2-Small-hf", "hf download", "--preset quality|fast"):
        assert needle in err
    assert "Traceback" not in err
    assert main(["segment", str(tmp_path / "photo.jpg"), "-q", "x", "--preset", "turbo"]) == 1
    assert "preset must be one of quality, fast" in capsys.readouterr().err
