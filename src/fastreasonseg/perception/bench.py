"""Per-frame time and peak memory of each perception component at full size, with random weights.

Random weights cost the same FLOPs as trained ones, so this needs no download: each
component is built from its default transformers config at the released architecture's size
(OWLv2 base/16 at 960 px as in ``owlv2-base-patch16-ensemble``, SAM 2.1 Hiera-Tiny at 1024 px,
Depth Anything V2 Small at 518 px) and run through the same wrapper classes the twin builders
use, pre- and post-processing included.

Components: ``owlv2`` (detection over ``labels`` cached text queries), ``sam2_image`` (masks
for ``objects`` boxes), ``sam2_video`` (streaming propagation of ``objects`` tracks per frame)
and ``depth``. Each runs in a fresh process by default, so its peak resident memory
(``ru_maxrss``) is its own; ``peak_rss_mb`` is the process peak and ``model_rss_mb`` the
increase over the process after importing torch and transformers.

Run::

    python -m fastreasonseg.perception.bench            # all components, 640x480, 3 frames
    # or from code: perception_benchmark(components=("depth",), frames=5)
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

COMPONENTS = ("owlv2", "sam2_image", "sam2_video", "depth")
CHECKPOINTS = {
    "owlv2": "google/owlv2-base-patch16-ensemble",
    "sam2_image": "facebook/sam2.1-hiera-tiny",
    "sam2_video": "facebook/sam2.1-hiera-tiny",
    "depth": "depth-anything/Depth-Anything-V2-Small-hf",
}


def _rss_peak_mb() -> float:
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _build(component: str, tiny: bool, objects: int, labels: int, device: str) -> tuple[Any, Any]:
    """(runner, model) where runner(image) processes one frame."""
    import torch

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    if component == "owlv2":
        from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2Processor
        from transformers.models.owlv2.image_processing_pil_owlv2 import Owlv2ImageProcessorPil

        from fastreasonseg.perception.detector import Owlv2Detector
        from fastreasonseg.perception.testing import OWL_SIZE, tiny_clip_tokenizer

        if tiny:
            from fastreasonseg.perception import testing

            folder = _tmpdir()
            testing.save_tiny_owlv2(folder)
            model = Owlv2ForObjectDetection.from_pretrained(folder)
            size = OWL_SIZE
        else:
            # The ensemble checkpoint runs its ViT-B/16 at 960 px (the config default is 768).
            model = Owlv2ForObjectDetection(Owlv2Config(vision_config={"image_size": 960}))
            size = 960
        processor = Owlv2Processor(image_processor=Owlv2ImageProcessorPil(size={"height": size, "width": size}),
                                   tokenizer=tiny_clip_tokenizer())
        detector = Owlv2Detector(model.to(device).eval(), processor, device=device, score_threshold=0.0)
        vocabulary = [f"object {i}" for i in range(labels)]
        detector.text_embeddings(vocabulary)  # one-time per vocabulary, not per frame
        return (lambda image: detector.detect(image, vocabulary)), model
    if component in ("sam2_image", "sam2_video"):
        from transformers import Sam2Config, Sam2Model, Sam2VideoConfig, Sam2VideoModel

        from fastreasonseg.perception.segmenter import Sam2ImageSegmenter
        from fastreasonseg.perception.testing import tiny_sam2_video_config
        from fastreasonseg.perception.tracker import Sam2VideoTracker

        video_config = tiny_sam2_video_config() if tiny else Sam2VideoConfig()
        if component == "sam2_image":
            config = Sam2Config(vision_config=video_config.vision_config,
                                prompt_encoder_config=video_config.prompt_encoder_config.to_dict(),
                                mask_decoder_config=video_config.mask_decoder_config.to_dict()) if tiny else Sam2Config()
            model = Sam2Model(config).to(device).eval()
            segmenter = Sam2ImageSegmenter(model, device=device)

            def segment(image):
                height, width = image.shape[:2]
                return segmenter.segment(image, _random_boxes(rng, objects, height, width))

            return segment, model
        model = Sam2VideoModel(video_config).to(device).eval()
        tracker = Sam2VideoTracker(model, device=device)
        state = {"started": False}

        def track(image):
            height, width = image.shape[:2]
            if not state["started"]:
                tracker.start(height, width)
                tracker.step(image)
                state["started"] = True
                return tracker.add_objects(dict(enumerate(_random_boxes(rng, objects, height, width))))
            return tracker.step(image)

        return track, model
    if component == "depth":
        from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation
        from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

        from fastreasonseg.perception.depth import DepthEstimator
        from fastreasonseg.perception.testing import DEPTH_SIZE

        if tiny:
            from fastreasonseg.perception import testing

            folder = _tmpdir()
            testing.save_tiny_depth_anything(folder)
            model = DepthAnythingForDepthEstimation.from_pretrained(folder)
            size = DEPTH_SIZE
        else:
            model = DepthAnythingForDepthEstimation(DepthAnythingConfig())
            size = 518
        processor = DPTImageProcessorPil(size={"height": size, "width": size}, keep_aspect_ratio=True,
                                         ensure_multiple_of=14, resample=3, do_pad=False,
                                         image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
        estimator = DepthEstimator(model.to(device).eval(), processor, device=device)
        return estimator.estimate, model
    raise ValueError(f"unknown component {component!r}; choose from {', '.join(COMPONENTS)}")


def _tmpdir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="frs_bench_")


def _random_boxes(rng: np.random.Generator, count: int, height: int, width: int) -> np.ndarray:
    x1 = rng.uniform(0, width * 0.7, count)
    y1 = rng.uniform(0, height * 0.7, count)
    box_w, box_h = rng.uniform(0.1, 0.3, count) * width, rng.uniform(0.1, 0.3, count) * height
    return np.stack([x1, y1, x1 + box_w, y1 + box_h], 1)


def benchmark_component(component: str, *, image_size: tuple[int, int] = (480, 640), frames: int = 3, warmup: int = 2,
                        objects: int = 5, labels: int = 80, device: str = "cpu", tiny: bool = False,
                        threads: int | None = None) -> dict[str, Any]:
    """Time one component in this process; see :func:`perception_benchmark` for the fields."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    baseline = _rss_peak_mb()
    runner, model = _build(component, tiny, objects, labels, device)
    params = sum(p.numel() for p in model.parameters())
    height, width = image_size
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8) for _ in range(warmup + frames)]
    for image in images[:warmup]:
        runner(image)
    wall, cpu = [], []
    for image in images[warmup:]:
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        runner(image)
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    peak = _rss_peak_mb()
    return {
        "component": component,
        "checkpoint": CHECKPOINTS[component] + (" (tiny test config)" if tiny else ""),
        "params_m": round(params / 1e6, 2),
        "image": f"{width}x{height}",
        "frames": frames,
        "seconds_per_frame": round(float(np.mean(wall)), 4),
        "seconds_per_frame_min": round(float(np.min(wall)), 4),
        "cpu_seconds_per_frame": round(float(np.mean(cpu)), 4),
        "peak_rss_mb": round(peak, 1),
        "model_rss_mb": round(peak - baseline, 1),
        "threads": torch.get_num_threads(),
        "device": device,
        "objects": objects if component.startswith("sam2") else None,
        "labels": labels if component == "owlv2" else None,
    }


def _child(component: str, kwargs: dict[str, Any], queue: Any) -> None:
    try:
        import torch  # noqa: F401 - imported before the baseline so it is not counted as the model's memory
        import transformers  # noqa: F401

        queue.put(benchmark_component(component, **kwargs))
    except BaseException as exc:  # the parent reports it; a child traceback would be lost
        queue.put({"component": component, "error": f"{type(exc).__name__}: {exc}"})


def perception_benchmark(components: Sequence[str] = COMPONENTS, *, image_size: tuple[int, int] = (480, 640),
                         frames: int = 3, warmup: int = 2, objects: int = 5, labels: int = 80, device: str = "cpu",
                         isolate: bool = True, tiny: bool = False, threads: int | None = None) -> list[dict[str, Any]]:
    """One row per component: seconds (wall and CPU) per frame and peak memory.

    ``image_size`` is (height, width) of the synthetic frames; ``objects`` the SAM 2 prompts /
    tracks per frame; ``labels`` the OWLv2 vocabulary size. ``isolate`` runs every component in
    its own process (clean peak memory); ``tiny`` swaps in the tiny test configs (for tests);
    ``threads`` sets torch's CPU threads (default: torch's choice, one per core).

    SAM 2 video cost grows with the memory bank for the first ``num_maskmem`` (7) frames of a
    track; use ``warmup >= 7`` for the steady-state cost of ``sam2_video``.
    """
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        raise ValueError(f"unknown components {unknown}; choose from {', '.join(COMPONENTS)}")
    kwargs = dict(image_size=tuple(image_size), frames=frames, warmup=warmup, objects=objects, labels=labels,
                  device=device, tiny=tiny, threads=threads)
    rows = []
    for component in components:
        if not isolate:
            rows.append(benchmark_component(component, **kwargs))
            continue
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        process = context.Process(target=_child, args=(component, kwargs, queue))
        process.start()
        row = queue.get()
        process.join()
        rows.append(row)
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of benchmark rows."""
    header = f"{'component':<11} {'params':>7} {'image':>8} {'s/frame':>8} {'cpu s/frame':>11} {'peak MB':>8} {'model MB':>8}"
    lines = [header]
    for row in rows:
        if "error" in row:
            lines.append(f"{row['component']:<11} error: {row['error']}")
            continue
        lines.append(f"{row['component']:<11} {row['params_m']:>6.1f}M {row['image']:>8} {row['seconds_per_frame']:>8.3f} "
                     f"{row['cpu_seconds_per_frame']:>11.3f} {row['peak_rss_mb']:>8.0f} {row['model_rss_mb']:>8.0f}")
    return "\n".join(lines)


if __name__ == "__main__":
    results = perception_benchmark()
    print(format_table(results))
    print(json.dumps(results, indent=1))
