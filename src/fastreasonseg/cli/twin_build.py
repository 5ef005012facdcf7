"""``frs twin build INPUT... --out DIR``: digital twins for many images and videos (or from annotations).

Examples::

    frs twin build photos/ clips/*.mp4 --out twins/            # perception models
    frs twin build photos/ --preset fast --out twins/          # CPU-first sizes, detect-mode video
    frs twin build list.txt --out twins/ --frame-stride 2 --max-frames 300
    frs twin build JPEGImages/ --frame-folders --out twins/    # DAVIS-style frame folders as videos
    frs twin build instances_val2017.json --annotations coco --images val2017/ --out oracle/
    frs twin build big_list.txt --out twins/ --ray auto        # spread over a Ray cluster

Reruns resume (finished twins are skipped), failures go to ``DIR/failures.jsonl`` and the run
continues, and the resolved config is saved as ``DIR/perception_config.yaml``. The work is
done by :mod:`fastreasonseg.perception.batch`; this module only parses arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ANNOTATION_FORMATS = ("coco", "davis", "revos")


def build_command(
    inputs: Annotated[list[Path], typer.Argument(help="Images, videos, folders, .txt lists of paths, or annotation "
                                                      "files/folders with --annotations.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: one <name>.json twin per input.")],
    config_file: Annotated[Path | None, typer.Option("--config", help="Perception config YAML (the fields of "
                                                     "PerceptionConfig); flags below override it.")] = None,
    preset: Annotated[str | None, typer.Option("--preset", help="quality (the paper's models at full size, the "
                                               "default) or fast (CPU-first input sizes, detect-mode video); "
                                               "model flags override its choices.")] = None,
    detector: Annotated[str | None, typer.Option("--detector", help="OWLv2 hub id or local folder.")] = None,
    segmenter: Annotated[str | None, typer.Option("--segmenter", help="SAM 2 hub id or local folder.")] = None,
    depth_model: Annotated[str | None, typer.Option("--depth-model", help="Depth Anything hub id, local folder, "
                                                    "or 'none' for no depth.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="float32, bfloat16 or float16.")] = None,
    autocast: Annotated[str | None, typer.Option("--autocast", help="bf16 autocast of the image encoders: auto "
                                                 "(on CPUs with bf16 arithmetic; the fast preset's), off "
                                                 "(quality's) or bfloat16.")] = None,
    vocabulary: Annotated[Path | None, typer.Option("--vocabulary", help="Extra labels file, one per line.")] = None,
    labels: Annotated[list[str] | None, typer.Option("--label", help="An extra label (repeatable).")] = None,
    no_default_vocabulary: Annotated[bool, typer.Option("--no-default-vocabulary",
                                                        help="Detect only --vocabulary/--label labels.")] = False,
    threshold: Annotated[float | None, typer.Option("--threshold", help="OWLv2 score threshold.")] = None,
    frame_stride: Annotated[int | None, typer.Option("--frame-stride", help="Process every Nth video frame.")] = None,
    max_frames: Annotated[int | None, typer.Option("--max-frames", help="At most N processed frames per video.")] = None,
    local_files_only: Annotated[bool, typer.Option("--local-files-only",
                                                   help="Never contact the model hub.")] = False,
    frame_folders: Annotated[bool, typer.Option("--frame-folders", help="A folder of images is one video "
                                                "(DAVIS JPEGImages/<video>/), not many images.")] = False,
    annotations: Annotated[str | None, typer.Option("--annotations", help="Oracle twins from ground truth: coco "
                                                    "(instances JSON), davis (Annotations folder) or revos "
                                                    "(meta_expressions JSON or its folder).")] = None,
    images: Annotated[Path | None, typer.Option("--images", help="With --annotations: the images/frames root "
                                                "(recorded as the source path; needed for --depth).")] = None,
    depth: Annotated[bool, typer.Option("--depth", help="With --annotations: add depth from the depth model.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Rebuild twins that already exist.")] = False,
    ray: Annotated[str | None, typer.Option("--ray", metavar="ADDRESS", help="Distribute over Ray: 'local' starts "
                                            "a local instance, 'auto' joins this machine's cluster, or "
                                            "ray://host:port.")] = None,
    ray_workers: Annotated[int | None, typer.Option("--ray-workers", help="Number of Ray actors (default: "
                                                    "cluster CPUs / --ray-cpus).")] = None,
    ray_cpus: Annotated[float, typer.Option("--ray-cpus", help="CPUs reserved per Ray actor.")] = 1.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> int:
    """Build digital twins for many inputs: resumable, failures logged, optionally on Ray."""
    from rich.console import Console
    from rich.markup import escape

    from fastreasonseg.errors import FrsError
    from fastreasonseg.perception.batch import (
        FAILURES_NAME,
        TwinProcessor,
        collect_annotation_items,
        collect_media_items,
        prepare_out_dir,
        run_build,
    )
    from fastreasonseg.perception.config import PerceptionConfig

    console = Console(stderr=True, highlight=False)
    if annotations is not None and annotations not in ANNOTATION_FORMATS:
        raise FrsError(f"--annotations must be one of {', '.join(ANNOTATION_FORMATS)}, got {annotations!r}")
    if (images is not None or depth) and annotations is None:
        raise FrsError("--images and --depth only apply with --annotations")
    if ray_cpus <= 0:
        raise FrsError(f"--ray-cpus must be positive, got {ray_cpus}")
    try:
        base = PerceptionConfig.load(config_file) if config_file is not None else PerceptionConfig()
        config = base.with_overrides(
            preset=preset, detector_model=detector, segmenter_model=segmenter, depth_model=depth_model, device=device, dtype=dtype,
            autocast=autocast,
            vocabulary_file=str(vocabulary) if vocabulary else None, score_threshold=threshold,
            frame_stride=frame_stride, max_frames=max_frames,
            extra_labels=[*base.extra_labels, *(labels or [])] if labels else None,
            use_default_vocabulary=False if no_default_vocabulary else None,
            local_files_only=True if local_files_only else None)
    except ValueError as exc:
        raise FrsError(str(exc)) from None

    processor = TwinProcessor(config, annotations=annotations, images_root=str(images) if images else None,
                              annotation_depth=depth)
    processor.check_available()
    broken: list[tuple[str, str]] = []
    if annotations:
        items, broken = collect_annotation_items(annotations, inputs, images_root=images)
        source = {"format": annotations, "inputs": [str(p) for p in inputs],
                  "images": str(images) if images else None, "depth": depth}
    else:
        items = collect_media_items(inputs, frame_folders=frame_folders)
        source = None
    if not items and not broken:
        raise FrsError("no inputs found (give images, videos, folders or .txt lists)")
    prepare_out_dir(out, config, overwrite=overwrite, annotation_source=source)
    if broken:
        from fastreasonseg.perception.batch import WorkItem, record_failure

        # An annotation file that cannot be opened is one failed input, like a corrupt image.
        for path, error in broken:
            record_failure(out, WorkItem(name=Path(path).stem, source=path, kind="annotation"), error)
            console.print(f"[red]failed[/red] {escape(_with_path(path, error))}", soft_wrap=True)
    report = run_build(items, out, processor, overwrite=overwrite, show_progress=not quiet, ray_address=ray,
                       ray_workers=ray_workers, ray_cpus_per_worker=ray_cpus)
    for path, error in report.failed:
        console.print(f"[red]failed[/red] {escape(_with_path(path, error))}", soft_wrap=True)
    failed = len(report.failed) + len(broken)
    console.print(f"built {len(report.built)}, skipped {len(report.skipped)} already done, failed {failed} "
                  f"in {report.seconds:.1f}s -> {escape(str(out))}"
                  + (f" (failures listed in {escape(str(out / FAILURES_NAME))})" if failed else ""))
    if failed:
        # Every input was attempted; the non-zero exit still tells scripts that some failed.
        raise typer.Exit(code=1)
    return 0


def _with_path(path: str, error: str) -> str:
    return error if error.startswith(path) else f"{path}: {error}"


def register(app: typer.Typer) -> None:
    from fastreasonseg.cli.twin import twin_app

    # build_app() runs once per main() call; register the command only once per process.
    if not any(command.name == "build" for command in twin_app.registered_commands):
        twin_app.command("build")(build_command)
