"""Per-frame time and peak memory of perception at full size with random weights, for each preset side by side.

Random weights cost the same FLOPs as trained ones, so this needs no download: each model is
built from its transformers config at the released architecture's size (OWLv2 B/16 with its
960 px grid as in ``owlv2-base-patch16-ensemble``, SAM 2.1 Hiera-Tiny, Depth Anything V2 Small),
put at the preset's input sizes by the same code the loaders use (position-grid truncation,
``sam2_config_at_size``, the depth processor size) and run through the same wrapper and builder
classes as ``frs twin build``, pre- and post-processing included.

Rows, per preset (:mod:`fastreasonseg.perception.presets`):

- ``detector`` (``labels`` cached text queries), ``segmenter`` (``objects`` boxes, one encoder
  pass), ``depth``: one component on a frame, for the breakdown;
- ``image``: :class:`ImageTwinBuilder` end to end on a frame (all three models loaded, so its
  peak memory is the pipeline's), with ``objects`` detections;
- ``video``: :meth:`VideoTwinBuilder.stream` in the preset's video mode with ``objects`` live
  tracks, timed over ``keyframe_interval`` frames (one key frame per cycle) after ``video_warmup``
  frames (SAM 2's memory bank fills in 7), i.e. the steady-state cost per frame.

Each row runs with its preset's ``autocast`` (``fast``: bf16 autocast of the encoders on a CPU
with bf16 arithmetic, float32 elsewhere; the row's ``autocast`` field and the table's last line
say which ran) unless ``autocast`` replaces it, e.g. ``--autocast off`` to time ``fast`` in float32.

Each row runs in a fresh process by default, so its peak resident memory (``ru_maxrss``) is its
own; ``model_rss_mb`` is the increase over the process after importing torch and transformers.

Run on quiet cores (nothing else running)::

    frs bench efficiency --perception --no-latency --reasoner student   # with the reasoner table
    python -m fastreasonseg.perception.bench                            # perception alone
    python -m fastreasonseg.perception.bench --presets fast --autocast off --threads 2   # fast in float32
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from fastreasonseg.perception.presets import PRESET_NAMES, PRESETS

COMPONENTS = ("detector", "segmenter", "depth", "image", "video")
# The tiny test models' input sizes stand in for the released ones (tests only).
_TINY_SIZES = {None: None, 384: 32, 448: 64, 252: 28}


def _rss_peak_mb() -> float:
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _models(preset: str, tiny: bool, device: str, autocast_dtype: Any) -> dict[str, Any]:
    """Random full-size (or tiny) models of the preset's architectures, wrapped at its input sizes and autocast."""
    import torch
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2Processor,
        Sam2Config,
        Sam2Model,
        Sam2VideoConfig,
        Sam2VideoModel,
    )
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil
    from transformers.models.owlv2.image_processing_pil_owlv2 import Owlv2ImageProcessorPil

    from fastreasonseg.perception import testing
    from fastreasonseg.perception.depth import DepthEstimator
    from fastreasonseg.perception.detector import OwlDetector
    from fastreasonseg.perception.segmenter import Sam2ImageSegmenter, sam2_config_at_size

    choice = PRESETS[preset]
    sizes = {name: getattr(choice, f"{name}_input_size") for name in ("detector", "segmenter", "depth")}
    torch.manual_seed(0)
    if tiny:
        sizes = {name: _TINY_SIZES[size] for name, size in sizes.items()}
        folder = testing.save_tiny_models(_tmpdir())
        owl = Owlv2ForObjectDetection.from_pretrained(folder.detector_model)
        video_config = testing.tiny_sam2_video_config()
        depth_model = DepthAnythingForDepthEstimation.from_pretrained(folder.depth_model)
        owl_size, depth_size = testing.OWL_SIZE, testing.DEPTH_SIZE
    else:
        owl = Owlv2ForObjectDetection(Owlv2Config(vision_config={"image_size": 960}))
        video_config = Sam2VideoConfig()
        depth_model = DepthAnythingForDepthEstimation(DepthAnythingConfig())
        owl_size, depth_size = 960, 518
    image_config = Sam2Config(vision_config=video_config.vision_config.to_dict(),
                              prompt_encoder_config=video_config.prompt_encoder_config.to_dict(),
                              mask_decoder_config=video_config.mask_decoder_config.to_dict())
    if sizes["segmenter"]:
        image_config = sam2_config_at_size(image_config, sizes["segmenter"])
        video_config = sam2_config_at_size(video_config, sizes["segmenter"])
    processor = Owlv2Processor(image_processor=Owlv2ImageProcessorPil(size={"height": owl_size, "width": owl_size}),
                               tokenizer=testing.tiny_clip_tokenizer())
    depth_processor = DPTImageProcessorPil(size={"height": depth_size, "width": depth_size}, keep_aspect_ratio=True,
                                           ensure_multiple_of=14, resample=3, do_pad=False,
                                           image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    segmenter = Sam2ImageSegmenter(Sam2Model(image_config).to(device).eval(), device=device,
                                   autocast_dtype=autocast_dtype)
    return {
        "detector": OwlDetector(owl.to(device).eval(), processor, device=device, score_threshold=0.0,
                                input_size=sizes["detector"], autocast_dtype=autocast_dtype),
        "segmenter": segmenter,
        "video_model": (lambda: Sam2VideoModel(video_config).to(device).eval()),
        "depth": DepthEstimator(depth_model.to(device).eval(), depth_processor, device=device,
                                input_size=sizes["depth"], autocast_dtype=autocast_dtype),
    }


def _tmpdir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="frs_bench_")


def _random_boxes(rng: np.random.Generator, count: int, height: int, width: int) -> np.ndarray:
    x1 = rng.uniform(0, width * 0.7, count)
    y1 = rng.uniform(0, height * 0.7, count)
    box_w, box_h = rng.uniform(0.1, 0.3, count) * width, rng.uniform(0.1, 0.3, count) * height
    return np.stack([x1, y1, x1 + box_w, y1 + box_h], 1)


def _runner(preset: str, component: str, models: dict[str, Any], objects: int, labels: int, device: str,
            autocast: str) -> Any:
    """A callable that processes one frame (``image``) with the component."""
    from fastreasonseg.perception.components import ComponentSet
    from fastreasonseg.perception.config import PerceptionConfig

    vocabulary = [f"object {i}" for i in range(labels)]
    rng = np.random.default_rng(0)
    if component == "detector":
        return lambda image: models["detector"].detect(image, vocabulary)
    if component == "segmenter":
        return lambda image: models["segmenter"].segment(image, _random_boxes(rng, objects, *image.shape[:2]))
    if component == "depth":
        return models["depth"].estimate
    # Random weights score every box about equally: threshold 0 and max_objects give `objects` detections
    # (image) and `objects` tracks that never end (video), which is the steady state being measured.
    config = PerceptionConfig(preset=preset, device=device, autocast=autocast, use_default_vocabulary=False,
                              extra_labels=tuple(vocabulary), query_nouns=False, score_threshold=0.0,
                              max_objects=objects, min_mask_area=0,
                              max_missing_frames=10**6, max_unconfirmed_keyframes=10**6)
    models["detector"].max_detections = objects
    if component == "image":
        from fastreasonseg.perception.image import ImageTwinBuilder

        return ImageTwinBuilder(config, detector=models["detector"], segmenter=models["segmenter"],
                                depth=models["depth"]).build
    from fastreasonseg.perception.media import VideoFrame
    from fastreasonseg.perception.tracker import Sam2VideoTracker
    from fastreasonseg.perception.video import VideoTwinBuilder

    tracker = None if config.video_mode == "detect" else Sam2VideoTracker(models["video_model"](), device=device)
    parts = ComponentSet(config, detector=models["detector"], segmenter=models["segmenter"], tracker=tracker,
                         depth=models["depth"])
    feed: list[Any] = []
    stream = VideoTwinBuilder(config, components=parts).stream(iter(lambda: feed.pop(), None))
    count = iter(range(10**9))

    def step(image: np.ndarray) -> Any:
        feed.append(VideoFrame(index=next(count), time=0.0, image=image))
        return next(stream)

    return step


def benchmark_component(preset: str, component: str, *, image_size: tuple[int, int] = (480, 640), frames: int = 3,
                        warmup: int = 1, video_warmup: int = 7, objects: int = 5, labels: int = 80,
                        device: str = "cpu", tiny: bool = False, threads: int | None = None,
                        autocast: str | None = None) -> dict[str, Any]:
    """Time one (preset, component) in this process; see :func:`perception_benchmark` for the fields."""
    import torch

    from fastreasonseg.perception.loading import dtype_name, resolve_autocast

    if threads is not None:
        torch.set_num_threads(threads)
    autocast = autocast or PRESETS[preset].autocast
    autocast_dtype = resolve_autocast(autocast, device)
    baseline = _rss_peak_mb()
    models = _models(preset, tiny, device, autocast_dtype)
    runner = _runner(preset, component, models, objects, labels, device, autocast)
    if component == "video":  # one key-frame cycle after the memory has filled
        warmup, frames = video_warmup, _keyframe_interval()
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
    used = {"detector": ["detector"], "segmenter": ["segmenter"], "depth": ["depth"]}.get(
        component, ["detector", "segmenter", "depth"])
    params = sum(p.numel() for name in used for p in models[name].model.parameters())
    choice = PRESETS[preset]
    return {
        "preset": preset, "component": component,
        "models": (f"{choice.detector_model}@{choice.detector_input_size or 960}, "
                   f"{choice.segmenter_model}@{choice.segmenter_input_size or 1024}, "
                   f"{choice.depth_model}@{choice.depth_input_size or 518}") + (" (tiny test configs)" if tiny else ""),
        "video_mode": choice.video_mode if component == "video" else None,
        # What ran: "bfloat16" autocast of the encoders (not of the propagate mode's video model) or "off".
        "autocast": dtype_name(autocast_dtype),
        "params_m": round(params / 1e6, 2), "image": f"{width}x{height}", "frames": frames,
        "seconds_per_frame": round(float(np.mean(wall)), 4), "seconds_per_frame_max": round(float(np.max(wall)), 4),
        "cpu_seconds_per_frame": round(float(np.mean(cpu)), 4),
        "peak_rss_mb": round(peak, 1), "model_rss_mb": round(peak - baseline, 1),
        "threads": torch.get_num_threads(), "device": device,
        "objects": objects if component in ("segmenter", "image", "video") else None,
        "labels": labels if component in ("detector", "image", "video") else None,
    }


def _keyframe_interval() -> int:
    from fastreasonseg.perception.config import PerceptionConfig

    return PerceptionConfig().keyframe_interval


def _child(preset: str, component: str, kwargs: dict[str, Any], queue: Any) -> None:
    try:
        import torch  # noqa: F401 - imported before the baseline so it is not counted as the model's memory
        import transformers  # noqa: F401

        queue.put(benchmark_component(preset, component, **kwargs))
    except BaseException as exc:  # the parent reports it; a child traceback would be lost
        queue.put({"preset": preset, "component": component, "error": f"{type(exc).__name__}: {exc}"})


def perception_benchmark(presets: Sequence[str] = PRESET_NAMES, components: Sequence[str] = COMPONENTS, *,
                         image_size: tuple[int, int] = (480, 640), frames: int = 3, warmup: int = 1,
                         video_warmup: int = 7, objects: int = 5, labels: int = 80, device: str = "cpu",
                         isolate: bool = True, tiny: bool = False, threads: int | None = None,
                         autocast: str | None = None) -> list[dict[str, Any]]:
    """One row per (preset, component): seconds (wall and CPU) per frame and peak memory.

    ``image_size`` is (height, width) of the synthetic frames; ``objects`` the boxes / tracks per
    frame; ``labels`` the vocabulary size. ``isolate`` runs every row in its own process (clean
    peak memory); ``tiny`` swaps in the tiny test configs (for tests); ``threads`` sets torch's
    CPU threads (default: torch's choice, one per core); ``autocast`` replaces every preset's own
    (``auto``, ``off``, ``bfloat16``; e.g. ``off`` times ``fast`` in float32 for comparison).
    """
    unknown = [c for c in components if c not in COMPONENTS] + [p for p in presets if p not in PRESET_NAMES]
    if unknown:
        raise ValueError(f"unknown presets/components {unknown}; presets: {', '.join(PRESET_NAMES)}; "
                         f"components: {', '.join(COMPONENTS)}")
    kwargs = dict(image_size=tuple(image_size), frames=frames, warmup=warmup, video_warmup=video_warmup,
                  objects=objects, labels=labels, device=device, tiny=tiny, threads=threads, autocast=autocast)
    rows = []
    for component in components:
        for preset in presets:
            if not isolate:
                rows.append(benchmark_component(preset, component, **kwargs))
                continue
            import multiprocessing

            context = multiprocessing.get_context("spawn")
            queue = context.Queue()
            process = context.Process(target=_child, args=(preset, component, kwargs, queue))
            process.start()
            rows.append(queue.get())
            process.join()
    return rows


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per preset: seconds per image frame and per video frame (end-to-end rows), video FPS, peak memory."""
    out: dict[str, dict[str, float | None]] = {}
    for row in rows:
        if "error" in row or row["component"] not in ("image", "video"):
            continue
        entry = out.setdefault(row["preset"], {})
        entry[f"{row['component']}_frame_s"] = row["seconds_per_frame"]
        entry["peak_rss_mb"] = max(entry.get("peak_rss_mb") or 0.0, row["peak_rss_mb"])
        if row["component"] == "video":
            entry["video_fps"] = 1.0 / row["seconds_per_frame"] if row["seconds_per_frame"] else None
    return out


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table: one line per component, the presets side by side (seconds per frame, peak MB)."""
    presets = list(dict.fromkeys(row["preset"] for row in rows))
    header = "| component | " + " | ".join(f"{p} s/frame | {p} peak MB" for p in presets) + " |"
    lines = [header, "|---|" + "---|---|" * len(presets)]
    for component in dict.fromkeys(row["component"] for row in rows):
        cells = []
        for preset in presets:
            row = next((r for r in rows if r["preset"] == preset and r["component"] == component), None)
            if row is None:
                cells += ["-", "-"]
            elif "error" in row:
                cells += [f"error: {row['error']}", "-"]
            else:
                cells += [f"{row['seconds_per_frame']:.3f}", f"{row['peak_rss_mb']:.0f}"]
        lines.append(f"| {component} | " + " | ".join(cells) + " |")
    cells = []
    for preset in presets:  # which precision ran, so a table is never read as the other one's
        ran = sorted({row["autocast"] for row in rows if row["preset"] == preset and "autocast" in row})
        cells += [", ".join(ran) or "-", ""]
    lines.append("| autocast | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fastreasonseg.perception.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESET_NAMES), choices=PRESET_NAMES)
    parser.add_argument("--components", nargs="+", default=list(COMPONENTS), choices=COMPONENTS)
    parser.add_argument("--autocast", choices=("auto", "off", "bfloat16"), default=None,
                        help="replace every preset's own autocast (default: the preset's)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: one per core)")
    args = parser.parse_args(argv)
    results = perception_benchmark(args.presets, args.components, autocast=args.autocast, threads=args.threads)
    print(format_table(results))
    print(json.dumps({"rows": results, "summary": summarize(results)}, indent=1))


if __name__ == "__main__":
    main()
