"""Tiny random OWLv2 / SAM 2 / Depth Anything models, saved and loaded through the user-facing code path.

Random weights detect nothing meaningful, so these tests check mechanics (shapes, loading,
twin validity, the OWLv2 processor's padding) with the real models, and check conventions
(box mapping, depth direction) with controlled model outputs run through the real
pre/post-processing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fastreasonseg.cli.main import main
from fastreasonseg.errors import FrsError
from fastreasonseg.perception import ImageTwinBuilder, PerceptionConfig, build_twin
from fastreasonseg.perception.depth import DepthEstimator, prediction_to_normalized_depth
from fastreasonseg.perception.detector import OwlDetector
from fastreasonseg.perception.loading import ModelsMissingError, check_models_available, resolve_device, resolve_dtype
from fastreasonseg.perception.segmenter import Sam2ImageSegmenter
from fastreasonseg.perception.testing import OWL_SIZE, save_tiny_models
from fastreasonseg.twin import DigitalTwin

LABELS = ["cup", "knife", "table"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py: tiny models, one thread


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> PerceptionConfig:
    folder = tmp_path_factory.mktemp("tiny_models")
    return save_tiny_models(folder, score_threshold=0.0, use_default_vocabulary=False, extra_labels=tuple(LABELS))


@pytest.fixture(scope="module")
def detector(tiny) -> OwlDetector:
    return OwlDetector.from_pretrained(tiny.detector_model, device="cpu", score_threshold=0.0)


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- OWLv2


def test_owlv2_processor_pads_bottom_right_to_a_square(detector):
    """The padding the box mapping relies on: a wide image keeps its rows at the top, padding below."""
    image = np.full((OWL_SIZE // 2, OWL_SIZE, 3), 255, dtype=np.uint8)  # white, half as tall as wide
    pixels = detector.processor.image_processor(images=image, return_tensors="pt")["pixel_values"][0].numpy()
    white = (1.0 - np.array([0.48145466, 0.4578275, 0.40821073])) / np.array([0.26862954, 0.26130258, 0.27577711])
    pad = (0.0 - np.array([0.48145466, 0.4578275, 0.40821073])) / np.array([0.26862954, 0.26130258, 0.27577711])
    top, bottom = pixels[:, : OWL_SIZE // 2 - 2], pixels[:, OWL_SIZE // 2 + 2 :]
    assert top.reshape(3, -1).mean(axis=1) == pytest.approx(white, abs=1e-3)
    assert bottom.reshape(3, -1).mean(axis=1) == pytest.approx(pad, abs=1e-3)


def test_cached_text_embeddings_give_the_same_output_as_the_full_forward(detector):
    image = random_image(40, 64)
    logits, boxes = detector.raw_outputs(image, LABELS)
    inputs = detector.processor(text=[[detector.prompt_template.format(label) for label in LABELS]], images=image,
                                return_tensors="pt")
    with torch.inference_mode():
        reference = detector.model(**inputs)
    assert logits.shape == (16, 3) and boxes.shape == (16, 4)
    assert np.allclose(logits, reference.logits[0].numpy(), atol=1e-5)
    assert np.allclose(boxes, reference.pred_boxes[0].numpy(), atol=1e-6)
    # The second call reuses the cached text queries.
    assert detector.text_embeddings(LABELS) is detector.text_embeddings(LABELS)


def test_detect_returns_boxes_inside_the_image(detector):
    dets = detector.detect(random_image(30, 64), LABELS)
    assert dets and all(d.label in LABELS for d in dets)
    for det in dets:
        x1, y1, x2, y2 = det.box
        assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 30
    assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)


# --------------------------------------------------------------------------- SAM 2 image


def test_sam2_image_segmenter_gives_full_resolution_masks(tiny):
    segmenter = Sam2ImageSegmenter.from_pretrained(tiny.segmenter_model, device="cpu")
    assert segmenter.size == 128
    result = segmenter.segment(random_image(48, 80), np.array([[5, 5, 40, 30], [30, 10, 79, 47]]))
    assert result.masks.shape == (2, 48, 80) and result.masks.dtype == bool
    assert result.iou_scores.shape == (2,) and result.object_logits.shape == (2,)
    assert segmenter.segment(random_image(48, 80), np.zeros((0, 4))).masks.shape == (0, 48, 80)


# --------------------------------------------------------------------------- depth convention


class _ControlledDepthModel(torch.nn.Module):
    """Stands in for Depth Anything's output: inverse depth growing towards the bottom of the image."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, pixel_values):
        _, _, height, width = pixel_values.shape
        rows = torch.linspace(1.0, 10.0, height)[:, None].expand(height, width)
        return type("Out", (), {"predicted_depth": rows[None]})()


def test_depth_estimator_turns_inverse_depth_into_zero_nearest(tiny):
    real = DepthEstimator.from_pretrained(tiny.depth_model, device="cpu")
    # Keep the real processor (resize to a multiple of 14, normalise) and post-processing.
    estimator = DepthEstimator(_ControlledDepthModel(real.model.config), real.processor)
    depth = estimator.estimate(random_image(60, 90))
    assert depth.shape == (60, 90)
    # Bottom rows have the largest inverse depth: nearest -> 0; top rows farthest -> 1.
    assert depth[-1].mean() < 0.05 and depth[0].mean() > 0.95
    assert np.all(np.diff(depth.mean(axis=1)) <= 1e-6)


def test_real_tiny_depth_model_output_is_normalised(tiny):
    depth = DepthEstimator.from_pretrained(tiny.depth_model, device="cpu").estimate(random_image(30, 50))
    assert depth.shape == (30, 50) and depth.min() == pytest.approx(0.0) and depth.max() == pytest.approx(1.0)


def test_metric_depth_is_not_flipped():
    metric = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # metres: 1 is nearest
    assert prediction_to_normalized_depth(metric, 2, 2, inverse=False)[0, 0] == 0.0
    assert prediction_to_normalized_depth(metric, 2, 2, inverse=True)[0, 0] == 1.0


def test_object_depth_follows_the_convention_in_an_image_twin(tiny, detector):
    """Controlled detections and depth, real SAM 2 masks: the lower object must come out nearer."""

    class TwoBoxes:
        def detect(self, image, labels):
            from fastreasonseg.perception.detector import Detection

            return [Detection((10, 5, 50, 25), "cup", 0.9), Detection((10, 50, 50, 75), "knife", 0.8)]

    class BoxMasks:  # SAM stand-in: the mask is the prompt box (random SAM masks carry no position)
        def segment(self, image, boxes):
            from fastreasonseg.perception.segmenter import SegmentationResult

            masks = np.zeros((len(boxes), *image.shape[:2]), bool)
            for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, int)):
                masks[i, y1:y2, x1:x2] = True
            return SegmentationResult(masks, np.ones(len(boxes)), np.ones(len(boxes)))

    real = DepthEstimator.from_pretrained(tiny.depth_model, device="cpu")
    builder = ImageTwinBuilder(tiny, detector=TwoBoxes(), segmenter=BoxMasks(),
                               depth=DepthEstimator(_ControlledDepthModel(real.model.config), real.processor))
    twin = builder.build(random_image(80, 60))
    cup, knife = twin.object(0), twin.object(1)
    assert (cup.label, knife.label) == ("cup", "knife")
    assert knife.depth.mean < cup.depth.mean  # knife lower in the image = larger inverse depth = nearer
    assert cup.box == (10.0, 5.0, 50.0, 25.0) and cup.area == 800


# --------------------------------------------------------------------------- whole image twins


def test_build_twin_with_tiny_models_gives_a_valid_image_twin(tiny, tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(random_image(48, 80)).save(path)
    twin = build_twin(path, tiny, queries=["the thing to cut the bread with"])
    assert twin.source.kind == "image" and (twin.source.width, twin.source.height) == (80, 48)
    assert twin.source.path == str(path)
    objects = twin.frames[0].objects
    assert objects, "threshold 0 must keep detections"
    assert [o.id for o in objects] == list(range(len(objects)))
    assert {o.label for o in objects} <= {*LABELS, "bread"}
    for obj in objects:
        assert obj.mask is not None and obj.area >= tiny.min_mask_area
        assert obj.depth is not None and 0.0 <= obj.depth.mean <= 1.0
    assert DigitalTwin.from_json(twin.to_json()) == twin


def test_image_builder_loads_models_once_and_serves_many_images(tiny):
    builder = ImageTwinBuilder(tiny)
    first = builder.build(random_image(40, 40, seed=1))
    detector = builder.components.detector
    second = builder.build(random_image(50, 30, seed=2))
    assert builder.components.detector is detector
    assert (second.source.width, second.source.height) == (30, 50) and first.source.path is None


# --------------------------------------------------------------------------- devices and offline


def test_auto_device_is_cpu_here_and_missing_devices_are_errors():
    assert resolve_device("auto") == "cpu"
    with pytest.raises(FrsError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(FrsError, match="float16 is not supported on the CPU"):
        resolve_dtype("float16", "cpu")


def test_offline_missing_models_error_names_ids_and_fixes(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelsMissingError) as info:
        check_models_available({"detector": "nobody/owlv2-does-not-exist", "segmenter": "nobody/sam2-missing"})
    message = str(info.value)
    for needle in ("nobody/owlv2-does-not-exist", "nobody/sam2-missing", "HF_HUB_OFFLINE", "hf download",
                   "HF_HOME", "--detector", "--segmenter", "local-dir"):
        assert needle in message


def test_missing_local_folder_is_named(tmp_path):
    with pytest.raises(FrsError, match="model folder not found"):
        check_models_available({"depth": str(tmp_path / "no_such_model")})


def test_cli_offline_error_has_no_traceback(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    image = tmp_path / "a.png"
    Image.fromarray(random_image(20, 20)).save(image)
    code = main(["twin", "build", str(image), "--out", str(tmp_path / "out"), "--detector", "nobody/owl-missing",
                 "--segmenter", "nobody/sam-missing", "--depth-model", "none"])
    err = capsys.readouterr().err
    assert code == 1
    assert "nobody/owl-missing" in err and "nobody/sam-missing" in err and "hf download" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # failed before creating anything
