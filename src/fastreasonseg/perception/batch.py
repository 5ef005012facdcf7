"""Building many twins: resumable batch runs, locally or spread over a Ray cluster (``frs twin build``).

- Inputs are image/video files, folders (searched recursively), ``.txt`` lists of paths (one
  per line, relative to the list's folder), or annotation files (``--annotations``). Each
  input becomes a :class:`WorkItem` with a stable output name, so a rerun maps to the same files.
- Resumable: an item whose output exists and validates as a twin is skipped; twins are
  written atomically (temporary file + rename), so an interrupted run never leaves a
  half-written twin that would be mistaken for a finished one.
- One bad input is recorded in ``failures.jsonl`` (input, error, time) and the run goes on;
  a missing model or device (:class:`~fastreasonseg.errors.FrsError`) stops the run, since
  every item would fail the same way.
- The resolved perception config is saved as ``perception_config.yaml`` in the output folder;
  resuming with a different config is refused (mixing twins from two settings in one folder
  would be silent data corruption) unless ``overwrite`` rebuilds everything.
- Ray: :func:`run_build` with ``ray_address`` starts one actor per worker; each loads the
  models once and builds the items it is sent; twins come back to the driver, which writes
  them, so only the inputs (not the output folder) must be reachable from the workers.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastreasonseg.errors import FrsError
from fastreasonseg.perception.config import PerceptionConfig
from fastreasonseg.perception.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, frame_files

log = logging.getLogger(__name__)

CONFIG_NAME = "perception_config.yaml"
FAILURES_NAME = "failures.jsonl"
ANNOTATIONS_NAME = "annotation_source.yaml"


@dataclass(frozen=True)
class WorkItem:
    """One twin to build: ``name`` is the output file stem, ``source`` the input path.

    For annotation twins ``key`` is the image or video name inside the annotation file.
    """

    name: str
    source: str
    kind: str  # "media" or "annotation"
    key: str | None = None


@dataclass
class BuildReport:
    built: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (input, error)
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"built {len(self.built)}, skipped {len(self.skipped)} already done, failed {len(self.failed)} "
                f"in {self.seconds:.1f}s")


# --------------------------------------------------------------------------- collecting inputs


def _safe_name(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_.=+" else "_" for c in text)
    return keep.strip("._") or "item"


def _is_media(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES or path.suffix.lower() in VIDEO_SUFFIXES


def _expand(path: Path, frame_folders: bool) -> list[tuple[Path, str]]:
    """(input path, output name) for one command-line input."""
    if path.is_file() and path.suffix.lower() == ".txt":
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                entry = Path(line).expanduser()
                entry = entry if entry.is_absolute() else path.parent / entry
                out.extend(_expand(entry, frame_folders))
        return out
    if not path.is_dir():
        # Missing or unsupported files become items too, so the failure is recorded, not dropped.
        return [(path, _safe_name(path.stem))]
    if frame_folders:
        # Each folder that directly holds images is one video; video files anywhere count too.
        folders = [d for d in [path, *sorted(p for p in path.rglob("*") if p.is_dir())] if frame_files(d)]
        out = [(d, _safe_name("__".join(d.relative_to(path).parts) or d.name)) for d in folders]
        videos = [p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
        return out + [(v, _safe_name("__".join(v.relative_to(path).with_suffix("").parts))) for v in videos]
    files = [p for p in sorted(path.rglob("*")) if p.is_file() and _is_media(p)]
    return [(p, _safe_name("__".join(p.relative_to(path).with_suffix("").parts))) for p in files]


def collect_media_items(inputs: Iterable[str | Path], *, frame_folders: bool = False) -> list[WorkItem]:
    """Work items for images/videos given as files, folders or .txt lists (see module doc).

    With ``frame_folders`` a folder that directly holds images is one video (DAVIS
    ``JPEGImages/<video>/``) instead of many images.
    """
    pairs: list[tuple[Path, str]] = []
    for raw in inputs:
        pairs.extend(_expand(Path(raw).expanduser(), frame_folders))
    return _unique_items([(str(p), name, "media", None) for p, name in pairs])


def collect_annotation_items(kind: str, inputs: Sequence[str | Path], *, images_root: str | Path | None = None
                             ) -> tuple[list[WorkItem], list[tuple[str, str]]]:
    """Work items for annotation twins, and (input, error) for annotation files that cannot be opened."""
    from fastreasonseg.perception.annotations import open_annotations

    rows: list[tuple[str, str, str, str | None]] = []
    broken: list[tuple[str, str]] = []
    for raw in inputs:
        try:
            names = open_annotations(kind, raw, images_root=images_root).names()
        except (ValueError, OSError) as exc:
            broken.append((str(raw), str(exc)))
            continue
        prefix = f"{_safe_name(Path(raw).stem)}__" if len(inputs) > 1 else ""
        rows.extend((str(raw), prefix + _safe_name(name), "annotation", name) for name in names)
    return _unique_items(rows), broken


def _unique_items(rows: list[tuple[str, str, str, str | None]]) -> list[WorkItem]:
    items: list[WorkItem] = []
    used: dict[str, int] = {}
    for source, name, kind, key in rows:
        count = used.get(name, 0)
        used[name] = count + 1
        # Deterministic suffixes keep names stable across reruns with the same inputs.
        items.append(WorkItem(name=name if count == 0 else f"{name}-{count + 1}", source=source, kind=kind, key=key))
    return items


# --------------------------------------------------------------------------- processing one item


class TwinProcessor:
    """Builds the twin of one :class:`WorkItem`; picklable, loads models lazily (once per process)."""

    def __init__(self, config: PerceptionConfig, *, annotations: str | None = None,
                 images_root: str | None = None, annotation_depth: bool = False):
        self.config = config
        self.annotations = annotations
        self.images_root = images_root
        self.annotation_depth = annotation_depth
        self._components: Any = None
        self._depth: Any = None
        self._sources: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Ship settings, not loaded models, to Ray workers.
        return {"config": self.config, "annotations": self.annotations, "images_root": self.images_root,
                "annotation_depth": self.annotation_depth}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"], annotations=state["annotations"], images_root=state["images_root"],
                      annotation_depth=state["annotation_depth"])

    def check_available(self) -> None:
        """Raise FrsError naming every missing model before any work starts."""
        from fastreasonseg.perception.loading import check_models_available, models_for

        if self.annotations:
            if self.annotation_depth:
                check_models_available(models_for(self.config, ["depth"]),
                                       local_files_only=self.config.local_files_only)
            return
        check_models_available(models_for(self.config, ["detector", "segmenter", "depth"]),
                               local_files_only=self.config.local_files_only)

    def __call__(self, item: WorkItem, progress: Callable[[int, int | None], None] | None = None) -> Any:
        if item.kind == "annotation":
            return self._annotation_twin(item)
        from fastreasonseg.perception.media import media_kind

        if self._components is None:
            from fastreasonseg.perception.components import ComponentSet

            # One set of models serves both builders, so a folder of images and videos loads each model once.
            self._components = ComponentSet(self.config)
        if media_kind(item.source) == "image":
            from fastreasonseg.perception.image import ImageTwinBuilder

            return ImageTwinBuilder(self.config, components=self._components).build(item.source)
        from fastreasonseg.perception.video import VideoTwinBuilder

        return VideoTwinBuilder(self.config, components=self._components).build(item.source, progress=progress)

    def _annotation_twin(self, item: WorkItem) -> Any:
        from fastreasonseg.perception.annotations import open_annotations

        source = self._sources.get(item.source)
        if source is None:
            source = open_annotations(self.annotations, item.source, images_root=self.images_root)
            self._sources = {item.source: source}  # one annotation file in memory at a time
        depth = None
        if self.annotation_depth:
            if self._depth is None:
                from fastreasonseg.perception.components import ComponentSet

                self._depth = ComponentSet(self.config).depth
            depth = self._depth
        return source.twin(item.key, depth=depth)


# --------------------------------------------------------------------------- the run


def _is_done(path: Path) -> bool:
    from fastreasonseg.twin.core import DigitalTwin, TwinValidationError

    if not path.is_file():
        return False
    try:
        DigitalTwin.load(path)
    except TwinValidationError:
        log.warning("%s exists but is not a valid twin; rebuilding it", path)
        return False
    return True


def record_failure(out_dir: Path, item: WorkItem, error: str) -> None:
    row = {"input": item.source, "name": item.name, "key": item.key, "error": error,
           "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with open(out_dir / FAILURES_NAME, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
        handle.flush()


def _describe(exc: BaseException) -> str:
    message = str(exc).strip() or repr(exc)
    return message if isinstance(exc, (ValueError, OSError)) else f"{type(exc).__name__}: {message}"


def _effective_dtype(config: dict[str, Any]) -> Any:
    """The dtype a config runs in: ``auto`` compares equal to what it resolves to here (float32 on a CPU),
    so folders built before ``auto`` became the default (with an explicit float32) still resume."""
    dtype = config.get("dtype")
    if dtype != "auto":
        return dtype
    from fastreasonseg.perception.loading import resolve_device

    return "float16" if resolve_device(str(config.get("device", "auto"))).startswith("cuda") else "float32"


def _effective_autocast(config: dict[str, Any]) -> Any:
    """The autocast a config runs with here: ``auto`` compares equal to what it resolves to on this machine
    (``off`` on a CPU without bf16 arithmetic), so ``fast`` folders built before the field existed still
    resume there, and are refused where ``auto`` now means bfloat16 (their twins were built in float32)."""
    autocast = config.get("autocast")
    if autocast != "auto":
        return autocast
    from fastreasonseg.perception.loading import resolve_autocast, resolve_device

    try:
        resolved = resolve_autocast("auto", resolve_device(str(config.get("device", "auto"))))
    except FrsError:
        return autocast
    return "off" if resolved is None else "bfloat16"


def prepare_out_dir(out_dir: Path, config: PerceptionConfig, *, overwrite: bool,
                    annotation_source: dict[str, Any] | None = None) -> None:
    """Create ``out_dir``, refuse to mix configs, and save the resolved config."""
    import yaml

    out_dir.mkdir(parents=True, exist_ok=True)
    saved_path = out_dir / CONFIG_NAME
    if saved_path.is_file() and not overwrite:
        try:
            saved = yaml.safe_load(saved_path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            saved = None
        current = config.to_dict()
        if isinstance(saved, dict):
            # A field added after the folder was built counts as its default there (the old behaviour).
            saved = {**PerceptionConfig().to_dict(), **saved}
            saved["dtype"], current["dtype"] = _effective_dtype(saved), _effective_dtype(current)
            saved["autocast"], current["autocast"] = _effective_autocast(saved), _effective_autocast(current)
            changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        else:
            changed = ["<unreadable>"]
        if changed:
            raise FrsError(f"{out_dir} holds twins built with a different perception config (differs in: "
                           f"{', '.join(changed)}); resume with the same settings (see {saved_path}), "
                           "use a new --out folder, or pass --overwrite to rebuild everything")
    config.save(saved_path)
    if annotation_source is not None:
        (out_dir / ANNOTATIONS_NAME).write_text(yaml.safe_dump(annotation_source, sort_keys=False), encoding="utf-8")
    for stale in out_dir.glob("*.json.tmp"):
        stale.unlink()  # left by an interrupted write; the item will be rebuilt


def run_build(items: Sequence[WorkItem], out_dir: str | Path, processor: Callable[..., Any], *,
              overwrite: bool = False, show_progress: bool = True, ray_address: str | None = None,
              ray_workers: int | None = None, ray_cpus_per_worker: float = 1.0) -> BuildReport:
    """Build every item's twin into ``out_dir/<name>.json`` (see module doc). Returns what happened."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = BuildReport()
    start = time.perf_counter()
    pending = []
    for item in items:
        if not overwrite and _is_done(out_dir / f"{item.name}.json"):
            report.skipped.append(item.name)
        else:
            pending.append(item)
    with _Progress(show_progress, total=len(items), done=len(report.skipped)) as progress:
        if ray_address is not None and pending:
            _run_ray(pending, out_dir, processor, report, progress, ray_address, ray_workers, ray_cpus_per_worker)
        else:
            for item in pending:
                progress.describe(item)
                try:
                    twin = processor(item, progress.frames)
                except FrsError:
                    raise
                except Exception as exc:  # one bad input must not stop the run: record it
                    record_failure(out_dir, item, _describe(exc))
                    report.failed.append((item.source, _describe(exc)))
                else:
                    twin.save(out_dir / f"{item.name}.json")
                    report.built.append(item.name)
                progress.advance()
    report.seconds = time.perf_counter() - start
    return report


class _RayWorker:
    """One Ray actor: a :class:`TwinProcessor` whose models stay loaded between items."""

    def __init__(self, processor: Callable[..., Any], driver_cwd: str):
        import os

        # Relative input and model paths mean the same thing as on the driver (local or shared file system).
        if os.path.isdir(driver_cwd):
            os.chdir(driver_cwd)
        self.processor = processor

    def build(self, item: WorkItem) -> tuple[WorkItem, dict | None, str | None, bool]:
        try:
            twin = self.processor(item)
        except FrsError as exc:
            return item, None, str(exc), True
        except Exception as exc:  # reported back to the driver, which records it
            return item, None, _describe(exc), False
        return item, twin.to_dict(), None, False


def _run_ray(pending: list[WorkItem], out_dir: Path, processor: Callable[..., Any], report: BuildReport,
             progress: _Progress, address: str, workers: int | None, cpus_per_worker: float) -> None:
    try:
        import ray
        from ray.util import ActorPool
    except ImportError:
        raise FrsError("--ray needs Ray: pip install 'fastreasonseg[ray]' (or pip install ray)") from None
    from fastreasonseg.twin.core import DigitalTwin

    started_here = not ray.is_initialized()
    if started_here:
        options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                                   "log_to_driver": False}
        if address == "local":
            if workers:
                options["num_cpus"] = max(1, round(workers * cpus_per_worker))
            ray.init(**options)
        else:
            try:
                ray.init(address=address, **options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise FrsError(f"cannot connect to the Ray cluster at {address!r}: {exc}") from None
    try:
        capacity = int(ray.cluster_resources().get("CPU", 1) // max(cpus_per_worker, 1e-6))
        count = max(1, min(len(pending), workers or capacity or 1))
        worker_class = ray.remote(num_cpus=cpus_per_worker)(_RayWorker)
        pool = ActorPool([worker_class.remote(processor, os.getcwd()) for _ in range(count)])
        fatal = None
        for item, data, error, is_fatal in pool.map_unordered(lambda actor, it: actor.build.remote(it), pending):
            progress.describe(item)
            if error is None:
                DigitalTwin.from_dict(data).save(out_dir / f"{item.name}.json")
                report.built.append(item.name)
            else:
                record_failure(out_dir, item, error)
                report.failed.append((item.source, error))
                fatal = fatal or (error if is_fatal else None)
            progress.advance()
        if fatal:
            raise FrsError(f"Ray workers could not build twins: {fatal}")
    finally:
        if started_here:
            ray.shutdown()


class _Progress:
    """A rich progress bar over items (plus frames of the current video), or nothing."""

    def __init__(self, enabled: bool, total: int, done: int):
        self.enabled = enabled
        self.total = total
        self.done = done
        self._progress: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeRemainingColumn(), transient=False)
            self._progress.start()
            self._items = self._progress.add_task("twins", total=self.total, completed=self.done)
            self._frames = self._progress.add_task("frames", total=None, visible=False)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def describe(self, item: WorkItem) -> None:
        if self._progress is not None:
            label = item.name if len(item.name) <= 40 else item.name[:37] + "..."
            self._progress.update(self._items, description=f"twins ({label})")
            self._progress.update(self._frames, visible=False, completed=0, total=None)

    def frames(self, done: int, total: int | None) -> None:
        if self._progress is not None:
            self._progress.update(self._frames, visible=True, completed=done, total=total)

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._items)
