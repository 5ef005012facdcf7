"""The warm state behind ``frs serve``: one reasoner, one perceiver, a scene cache and a bounded queue.

Models load once (when the service is built) and serve every request. The reasoner keeps a
single prefix KV cache, so jobs run one at a time on a single worker thread; that also
makes a repeated scene cheap twice over: the scene cache (keyed by the SHA-256 of the
uploaded bytes) skips perception, and the engine's twin text plus the backend's token
prefix cache skip re-encoding the twin for the next query about it.

Admission is bounded: at most ``1 + queue_size`` jobs are running or waiting; a further
request gets :class:`QueueFull` (503 + ``Retry-After`` in the app) instead of buffering more
uploads. A job that exceeds the per-request timeout is answered with 504; a job still
waiting is cancelled, a running one finishes in the background and keeps its slot until it
does, so timeouts never let more work pile up than the queue allows.

Departure: perception here builds the twin from the file alone (no query nouns added to the
detector's vocabulary, unlike ``frs segment``), so the twin is a function of the bytes and
can be cached and shared by every query about the scene.
"""

from __future__ import annotations

import collections
import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastreasonseg.serve.config import ServeConfig
from fastreasonseg.serve.uploads import UploadError, UploadFolder, check_image, check_video, classify

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from fastreasonseg.api.segmenter import ReasoningSegmenter
    from fastreasonseg.reasoning.engine import RolloutEngine
    from fastreasonseg.twin.core import DigitalTwin

# perceiver(path, kind) -> twin; kind is "image" or "video". Raises FrsError when models are missing.
Perceiver = Callable[["Path", str], "DigitalTwin"]


class QueueFull(Exception):
    """Every running and waiting slot is taken."""


class PerceptionUnavailable(Exception):
    """The perception models cannot be loaded (message says how to get them)."""


@dataclass
class Scene:
    """A scene the service has seen: its twin, the picture overlays are drawn on, and what perception cost."""

    scene_id: str
    kind: str  # "twin", "image", "video" or "demo"
    twin: DigitalTwin
    picture: np.ndarray | None
    perception_s: float
    cached: bool = False


class DefaultPerceiver:
    """OWLv2 + SAM 2 + Depth Anything through :mod:`fastreasonseg.perception`, loaded on first use and kept."""

    def __init__(self, config: Any = None):
        self.config = config
        self._builders: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.unavailable: str | None = None  # why the models could not load, once we know

    def builder(self, kind: str) -> Any:
        """The image or video builder, created on first use; PerceptionUnavailable when its weights are missing."""
        from fastreasonseg.errors import FrsError

        with self._lock:
            builder = self._builders.get(kind)
            if builder is None:
                from fastreasonseg.perception import ImageTwinBuilder, PerceptionConfig, VideoTwinBuilder

                config = self.config or PerceptionConfig(device="cpu", local_files_only=True)
                builder = (ImageTwinBuilder if kind == "image" else VideoTwinBuilder)(config)
                try:
                    builder.check_available()
                except FrsError as exc:
                    self.unavailable = str(exc)
                    raise PerceptionUnavailable(str(exc)) from None
                self._builders[kind] = builder
                self.unavailable = None
        return builder

    def preload(self) -> str | None:
        """Check the weights at start-up (``frs serve`` calls this); returns why perception is unavailable, or None."""
        try:
            self.builder("image")
        except PerceptionUnavailable as exc:
            return str(exc)
        return None

    def __call__(self, path: Path, kind: str) -> DigitalTwin:
        return self.builder(kind).build(path)


class SegmentService:
    """Everything a request needs, built once. Thread-safe; jobs run on one worker thread.

    Reasoning goes through the Python API (:class:`~fastreasonseg.api.segmenter.ReasoningSegmenter`,
    the same path as ``frs segment``); ``engine`` may be an engine or a built segmenter.
    """

    def __init__(self, engine: RolloutEngine | ReasoningSegmenter, config: ServeConfig | None = None, *,
                 perceiver: Perceiver | None = None, reasoner_name: str | None = None):
        from fastreasonseg.api.segmenter import ReasoningSegmenter

        self.config = config or ServeConfig()
        self.segmenter = engine if isinstance(engine, ReasoningSegmenter) else ReasoningSegmenter(engine)
        self.segmenter.max_queries = self.config.max_queries
        self.segmenter.max_query_chars = self.config.max_query_chars
        engine = self.segmenter.engine
        self.perceiver = perceiver if perceiver is not None else DefaultPerceiver()
        self.reasoner_name = reasoner_name or getattr(engine.backend, "name", type(engine.backend).__name__)
        self.started = time.time()
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._uploads: UploadFolder | None = None
        self._in_flight = 0
        self._running = 0
        self._scenes: collections.OrderedDict[str, Scene] = collections.OrderedDict()
        self.counters = collections.Counter()

    @property
    def engine(self) -> RolloutEngine:
        return self.segmenter.engine

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Create the worker thread and the private upload folder (idempotent; the app's start-up calls it)."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frs-serve")
            if self._uploads is None:
                self._uploads = UploadFolder()

    @property
    def uploads(self) -> UploadFolder:
        self.start()
        assert self._uploads is not None
        return self._uploads

    def close(self) -> None:
        """Stop the worker and delete the upload folder; the models stay loaded, so ``start`` can follow."""
        with self._lock:
            executor, uploads = self._executor, self._uploads
            self._executor = self._uploads = None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        if uploads is not None:
            uploads.cleanup()

    # ------------------------------------------------------------------ admission

    @property
    def capacity(self) -> int:
        return 1 + self.config.queue_size

    def queue_state(self) -> dict[str, int]:
        with self._lock:
            return {"running": self._running, "waiting": self._in_flight - self._running, "capacity": self.capacity}

    def submit(self, job: Callable[[], Any]) -> Future:
        """Queue ``job`` on the worker, or raise :class:`QueueFull`. The slot is freed when the job ends or is cancelled."""
        with self._lock:
            if self._in_flight >= self.capacity:
                self.counters["rejected_queue_full"] += 1
                raise QueueFull(f"{self._in_flight} requests running or waiting (limit {self.capacity})")
            self._in_flight += 1

        def run() -> Any:
            with self._lock:
                self._running += 1
            try:
                return job()
            finally:
                with self._lock:
                    self._running -= 1

        self.start()
        try:
            assert self._executor is not None
            future = self._executor.submit(run)
        except (RuntimeError, AssertionError):  # closed concurrently
            with self._lock:
                self._in_flight -= 1
            raise
        future.add_done_callback(self._release)
        return future

    def _release(self, _future: Future) -> None:
        with self._lock:
            self._in_flight -= 1

    # ------------------------------------------------------------------ scenes

    def cached_scene(self, scene_id: str) -> Scene | None:
        with self._lock:
            scene = self._scenes.get(scene_id)
            if scene is not None:
                self._scenes.move_to_end(scene_id)
        return scene

    def _remember(self, scene: Scene) -> None:
        with self._lock:
            self._scenes[scene.scene_id] = scene
            self._scenes.move_to_end(scene.scene_id)
            while len(self._scenes) > self.config.cache_size:
                self._scenes.popitem(last=False)

    @staticmethod
    def content_id(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()[:32]

    def scene_from_upload(self, data: bytes, content_type: str | None) -> Scene:
        """Twin JSON, image or video bytes -> a scene (cached by content hash). Runs on the worker thread."""
        scene_id = self.content_id(data)
        cached = self.cached_scene(scene_id)
        if cached is not None:
            self.counters["scene_cache_hits"] += 1
            return Scene(cached.scene_id, cached.kind, cached.twin, cached.picture, cached.perception_s, cached=True)
        sniffed = classify(data, content_type)
        started = time.perf_counter()
        if sniffed.kind == "twin":
            scene = Scene(scene_id, "twin", parse_twin(data), None, 0.0)
        else:
            path = self.uploads.write(data, sniffed.suffix)
            try:
                if sniffed.kind == "image":
                    picture = check_image(path, self.config)
                else:
                    picture = check_video(path, self.config)
                twin = self.perceiver(path, sniffed.kind)
            finally:
                path.unlink(missing_ok=True)
            scene = Scene(scene_id, sniffed.kind, twin, picture, time.perf_counter() - started)
        self.counters["scenes_built"] += 1
        self._remember(scene)
        return scene

    def demo_scene(self, name: str) -> Scene:
        from fastreasonseg.api.demos import DEMOS, demo_scene

        if name not in DEMOS:
            raise UploadError(404, f"no demo scene {name!r}; choose from {', '.join(DEMOS)}")
        scene_id = f"demo-{name}"
        cached = self.cached_scene(scene_id)
        if cached is not None:
            return Scene(cached.scene_id, "demo", cached.twin, cached.picture, 0.0, cached=True)
        demo = demo_scene(name)
        scene = Scene(scene_id, "demo", demo.twin, demo.picture, 0.0)
        self._remember(scene)
        return scene

    # ------------------------------------------------------------------ reasoning

    def segment(self, scene: Scene, queries: Sequence[str], *, overlay: bool = False) -> list[dict[str, Any]]:
        """Run every query on the scene's twin (one shared prefix) and build result.json dicts. Worker thread."""
        from fastreasonseg.api.segmenter import Scene as ApiScene
        from fastreasonseg.serve.results import overlay_png, png_base64, segment_result

        # Perception is paid once per request (and not at all for a cached scene): the API charges it to the first query.
        asked = ApiScene(twin=scene.twin, perception_s=0.0 if scene.cached else scene.perception_s)
        results = []
        for answer in self.segmenter.ask_many(list(queries), scene=asked):
            result = segment_result(answer.segment)
            if overlay:
                result["overlay_png"] = png_base64(overlay_png(scene.twin, scene.picture, answer.object_ids))
            results.append(result)
        self.counters["queries"] += len(results)
        return results


def parse_twin(data: bytes) -> DigitalTwin:
    """Twin JSON bytes -> a validated twin; every problem is an UploadError(422) naming the fields."""
    import json

    from fastreasonseg.twin.core import DigitalTwin, TwinValidationError

    try:
        payload = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UploadError(422, f"the twin JSON is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise UploadError(422, f"the twin is not valid JSON ({exc})") from None
    try:
        return DigitalTwin.from_dict(payload)
    except TwinValidationError as exc:
        raise UploadError(422, str(exc)) from None
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError) as exc:
        raise UploadError(422, f"invalid digital twin: {exc}") from None
