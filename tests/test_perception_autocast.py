"""bf16 autocast of the perception encoders: when it turns on, that it really runs, and parity with float32.

The parity tests load tiny random models of the real classes through ``from_pretrained`` twice,
once plain and once with ``autocast_dtype=torch.bfloat16``, and compare outputs on the same
images. Tolerances (measured on this machine's AVX-512-BF16 EPYC in brackets, so the margins show):

- detector: class logits within 3% of their largest magnitude (<= 1.1%), normalised boxes
  within 2e-3 of the input square (<= 1.5e-4, i.e. < 0.1 px at 384 px), the same detections
  with pixel boxes within 1 px;
- segmenter: every box's thresholded mask IoU >= 0.97 against float32 (>= 0.99), predicted IoU
  and object-score logits within 1e-3;
- depth: raw prediction relative L2 error <= 5% (<= 1.6%), normalised map within 0.05 of the
  frame's range everywhere (<= 0.019), a region's mean depth (the twin's statistic) within 0.01.

They skip on CPUs without bf16 arithmetic, where the ``fast`` preset stays in float32 anyway.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fastreasonseg.errors import FrsError
from fastreasonseg.hardware import cpu_has_bf16
from fastreasonseg.perception import ImageTwinBuilder, PerceptionConfig
from fastreasonseg.perception.batch import prepare_out_dir
from fastreasonseg.perception.components import ComponentSet
from fastreasonseg.perception.depth import DepthEstimator
from fastreasonseg.perception.detector import OwlDetector
from fastreasonseg.perception.loading import resolve_autocast
from fastreasonseg.perception.ops import depth_stats
from fastreasonseg.perception.segmenter import Sam2ImageSegmenter
from fastreasonseg.perception.testing import save_tiny_models
from fastreasonseg.twin.masks import decode_mask

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py: tiny models, one thread

LABELS = ("cup", "knife", "plate")
BF16 = torch.bfloat16
needs_bf16 = pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no bf16 arithmetic (AVX-512-BF16 or AMX); "
                                "the fast preset keeps float32 here, so there is no bf16 path to compare")

AVX2 = "flags: fpu sse4_2 avx avx2 fma"
AVX512_BF16 = "flags: fpu avx2 avx512f avx512bw avx512_bf16"
AMX = "flags: fpu avx2 amx_bf16 amx_tile amx_int8"


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> PerceptionConfig:
    """The tiny models, the detector's heads re-initialised the way ``torch.nn.Linear`` does.

    transformers gives the OWLv2 class and box heads std-1 weights (no rule for them in its
    ``_init_weights``), so a random three-layer box head outputs logits of +-100 and every box
    sigmoid saturates: no detection survives and a 0.4% feature error moves some boxes by 5% of
    the image. Trained heads work at the scale PyTorch's default initialisation gives.
    """
    from transformers import Owlv2ForObjectDetection

    config = save_tiny_models(tmp_path_factory.mktemp("tiny_autocast_models"), score_threshold=0.0, max_objects=3,
                              use_default_vocabulary=False, extra_labels=LABELS, min_mask_area=1)
    owl = Owlv2ForObjectDetection.from_pretrained(config.detector_model)
    torch.manual_seed(0)
    for layer in [*owl.class_head.modules(), *owl.box_head.modules()]:
        if isinstance(layer, torch.nn.Linear):
            layer.reset_parameters()
    owl.save_pretrained(config.detector_model)
    return config


@contextmanager
def output_dtypes(module: torch.nn.Module):
    """Collect the output dtypes of every Linear and Conv2d layer inside ``module`` while the block runs."""
    seen: set[torch.dtype] = set()
    hooks = [layer.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype)) for layer in module.modules()
             if isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d))]
    try:
        yield seen
    finally:
        for hook in hooks:
            hook.remove()


# --------------------------------------------------------------------------- when autocast turns on


@pytest.mark.parametrize("cpuinfo, expected", [(AVX512_BF16, True), (AMX, True), (AVX2, False), ("", False)])
def test_the_cpu_flags_say_whether_bf16_is_native(cpuinfo, expected):
    assert cpu_has_bf16(cpuinfo) is expected


@pytest.mark.parametrize("autocast, device, cpuinfo, expected", [
    ("auto", "cpu", AVX512_BF16, BF16),  # the fast preset on this project's EPYC
    ("auto", "cpu", AMX, BF16),
    ("auto", "cpu", AVX2, None),  # the fast preset stays float32 where bf16 is emulated
    ("auto", "cuda", AVX512_BF16, None),  # CUDA unchanged: float16 weights, no autocast
    ("auto", "cuda:1", AVX2, None),
    ("auto", "mps", AVX512_BF16, None),
    ("off", "cpu", AVX512_BF16, None),  # the quality preset
    ("bfloat16", "cpu", AVX512_BF16, BF16),
    ("bfloat16", "cuda", AVX2, BF16),
])
def test_autocast_resolves_per_device_and_cpu(autocast, device, cpuinfo, expected):
    assert resolve_autocast(autocast, device, cpuinfo=cpuinfo) == expected


@pytest.mark.parametrize("autocast, device, message", [
    ("bfloat16", "cpu", "needs a CPU with bf16 arithmetic"),
    ("bfloat16", "mps", "not 'mps'"),
    ("float16", "cpu", "unknown autocast"),
])
def test_autocast_that_cannot_pay_is_an_error(autocast, device, message):
    with pytest.raises(FrsError, match=message):
        resolve_autocast(autocast, device, cpuinfo=AVX2)


def test_presets_choose_autocast_and_twins_record_it():
    fast, quality = PerceptionConfig(preset="fast"), PerceptionConfig()
    assert (fast.autocast, quality.autocast) == ("auto", "off")
    assert fast.twin_metadata()["perception"]["autocast"] == "auto"
    assert fast.with_overrides(preset="quality").autocast == "off"
    assert PerceptionConfig(preset="fast", autocast="off").with_overrides(preset="quality").autocast == "off"
    with pytest.raises(ValueError, match="autocast must be one of auto, off, bfloat16"):
        PerceptionConfig(autocast="fp8")


def test_loaded_models_get_the_resolved_autocast(tiny):
    here = BF16 if cpu_has_bf16() else None  # what "auto" means on this machine
    parts = ComponentSet(tiny.with_overrides(autocast="auto"))
    assert parts.autocast_dtype == here
    assert parts.detector.autocast_dtype == parts.segmenter.autocast_dtype == parts.depth.autocast_dtype == here
    assert ComponentSet(tiny).segmenter.autocast_dtype is None  # tiny's config keeps quality's "off"


@pytest.mark.parametrize("cpuinfo, resumes", [(AVX2, True), (AVX512_BF16, False)])
def test_a_fast_folder_built_before_autocast_resumes_only_where_it_stays_float32(monkeypatch, tmp_path, cpuinfo,
                                                                                 resumes):
    import fastreasonseg.hardware

    monkeypatch.setattr(fastreasonseg.hardware, "_proc_cpuinfo", lambda: cpuinfo)
    fast = PerceptionConfig(preset="fast", device="cpu")
    old = fast.to_dict()
    del old["autocast"]  # a perception_config.yaml written before the field existed
    (tmp_path / "perception_config.yaml").write_text(yaml.safe_dump(old))
    if resumes:
        prepare_out_dir(tmp_path, fast, overwrite=False)
    else:
        with pytest.raises(FrsError, match="differs in: autocast"):
            prepare_out_dir(tmp_path, fast, overwrite=False)
        prepare_out_dir(tmp_path, fast.with_overrides(autocast="off"), overwrite=False)  # float32, as it was built
    assert yaml.safe_load((tmp_path / "perception_config.yaml").read_text())["autocast"] in ("auto", "off")


def test_twin_build_takes_autocast_from_the_command_line(tiny, tmp_path):
    from PIL import Image

    from fastreasonseg.cli.main import main
    from fastreasonseg.twin import DigitalTwin

    fast = tiny.with_overrides(preset="fast", detector_input_size=32, segmenter_input_size=64, depth_input_size=28)
    assert fast.autocast == "auto"
    Image.fromarray(random_image(48, 64)).save(tmp_path / "photo.png")
    out = tmp_path / "twins"
    assert main(["twin", "build", str(tmp_path / "photo.png"), "--out", str(out), "--config",
                 str(fast.save(tmp_path / "fast.yaml")), "--autocast", "off", "--quiet"]) == 0
    assert yaml.safe_load((out / "perception_config.yaml").read_text())["autocast"] == "off"
    perception = DigitalTwin.load(out / "photo.json").metadata["perception"]
    assert perception["autocast"] == "off"
    assert perception["ran"] == {"device": "cpu", "dtype": "float32", "autocast": "off"}  # what ran, not only what was asked


# --------------------------------------------------------------------------- parity with float32


@needs_bf16
def test_detector_encoder_runs_in_bf16_heads_in_float32_and_outputs_match(tiny):
    plain = OwlDetector.from_pretrained(tiny.detector_model, score_threshold=0.0)
    mixed = OwlDetector.from_pretrained(tiny.detector_model, score_threshold=0.0, autocast_dtype=BF16)
    labels = list(LABELS)
    mixed.text_embeddings(labels)  # cached text queries, float32
    with output_dtypes(mixed.model.owlv2.vision_model) as encoder, output_dtypes(mixed.model.box_head) as box_head, \
            output_dtypes(mixed.model.class_head) as class_head:
        mixed.raw_outputs(random_image(96, 128), labels)
    assert encoder == {BF16} and box_head == class_head == {torch.float32}
    for seed in range(3):
        image = random_image(96, 128, seed)
        (logits, boxes), (logits_bf16, boxes_bf16) = plain.raw_outputs(image, labels), mixed.raw_outputs(image, labels)
        assert logits_bf16.dtype == boxes_bf16.dtype == np.float32
        assert np.abs(logits_bf16 - logits).max() <= 0.03 * np.abs(logits).max()
        assert np.abs(boxes_bf16 - boxes).max() <= 2e-3
        detections, detections_bf16 = plain.detect(image, labels), mixed.detect(image, labels)
        assert detections and len(detections_bf16) == len(detections)
        for det in detections:
            assert any(other.label == det.label and np.abs(np.subtract(other.box, det.box)).max() <= 1.0
                       and abs(other.score - det.score) <= 0.01 for other in detections_bf16), det


@needs_bf16
def test_segmenter_encoder_runs_in_bf16_decoder_in_float32_and_masks_match(tiny):
    plain = Sam2ImageSegmenter.from_pretrained(tiny.segmenter_model)
    mixed = Sam2ImageSegmenter.from_pretrained(tiny.segmenter_model, autocast_dtype=BF16)
    boxes = np.array([[5, 5, 60, 50], [50, 20, 120, 90], [10, 40, 100, 95], [70, 0, 127, 40]])
    image = random_image(96, 128)
    with output_dtypes(mixed.model.vision_encoder) as encoder:
        embedding = mixed.encode(image)
    with output_dtypes(mixed.model.mask_decoder) as decoder:  # (box prompts pass no Linear of the prompt encoder)
        mixed.decode(embedding, boxes)
    assert encoder == {BF16} and decoder == {torch.float32}
    assert {feature.dtype for feature in embedding.features} == {torch.float32}
    for seed in range(3):
        image = random_image(96, 128, seed)
        reference, result = plain.segment(image, boxes), mixed.segment(image, boxes)
        assert reference.masks.sum(axis=(1, 2)).min() > 100  # real masks, not empty ones agreeing trivially
        ious = [(a & b).sum() / (a | b).sum() for a, b in zip(reference.masks, result.masks, strict=True)]
        assert min(ious) >= 0.97, ious
        assert np.allclose(result.iou_scores, reference.iou_scores, atol=1e-3)
        assert np.allclose(result.object_logits, reference.object_logits, atol=1e-3)


@needs_bf16
def test_depth_runs_in_bf16_and_the_twin_statistics_match(tiny):
    plain = DepthEstimator.from_pretrained(tiny.depth_model)
    mixed = DepthEstimator.from_pretrained(tiny.depth_model, autocast_dtype=BF16)
    with output_dtypes(mixed.model) as layers:
        raw_bf16 = mixed.predict_raw(random_image(60, 90))
    assert layers == {BF16} and raw_bf16.dtype == torch.float32
    region = np.zeros((60, 90), dtype=bool)
    region[10:40, 20:70] = True
    for seed in range(3):
        image = random_image(60, 90, seed)
        raw, raw_bf16 = plain.predict_raw(image), mixed.predict_raw(image)
        assert float((raw_bf16 - raw).norm() / raw.norm()) <= 0.05
        depth, depth_bf16 = plain.estimate(image), mixed.estimate(image)
        assert depth_bf16.dtype == np.float32 and np.abs(depth_bf16 - depth).max() <= 0.05
        assert abs(depth_stats(depth_bf16, region)[0] - depth_stats(depth, region)[0]) <= 0.01


@needs_bf16
def test_image_twin_with_bf16_encoders_matches_the_float32_twin(tiny):
    twin = ImageTwinBuilder(tiny.with_overrides(autocast="off")).build(random_image(96, 128))
    twin_bf16 = ImageTwinBuilder(tiny.with_overrides(autocast="bfloat16")).build(random_image(96, 128))
    assert twin_bf16.metadata["perception"]["autocast"] == "bfloat16"
    assert twin_bf16.metadata["perception"]["ran"]["autocast"] == "bfloat16"
    assert twin.metadata["perception"]["ran"]["autocast"] == "off"
    objects, objects_bf16 = twin.frames[0].objects, twin_bf16.frames[0].objects
    assert objects and [(o.id, o.label) for o in objects_bf16] == [(o.id, o.label) for o in objects]
    for obj, obj_bf16 in zip(objects, objects_bf16, strict=True):
        mask, mask_bf16 = decode_mask(obj.mask), decode_mask(obj_bf16.mask)
        assert (mask & mask_bf16).sum() / (mask | mask_bf16).sum() >= 0.95
        assert abs(obj_bf16.depth.mean - obj.depth.mean) <= 0.02 and abs(obj_bf16.score - obj.score) <= 0.01


def test_test_helpers_see_every_layer(tiny):
    """The dtype probe itself: float32 layers report float32, and it counts nothing after the block."""
    depth = DepthEstimator.from_pretrained(tiny.depth_model)
    with output_dtypes(depth.model) as layers:
        depth.predict_raw(random_image(30, 30))
    assert layers == {torch.float32}
    layers.clear()
    depth.predict_raw(random_image(30, 30))
    assert not layers and Path(tiny.depth_model).is_dir()
