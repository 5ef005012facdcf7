"""``ReasoningSegmenter``: load once, set a scene once, ask many questions; the one path from a query to masks.

::

    seg = ReasoningSegmenter.from_pretrained("default")      # reasoner (+ perception, loaded on first use)
    scene = seg.set_scene(frame_rgb)                          # array, PIL image, path, video frames, or a twin
    result = seg.ask("the thing I would cut the bread with")  # SegmentationResult: ids, masks, boxes, reasoning
    results = seg.ask_many(["the nearest cup", "the largest plate"])   # one shared, once-encoded prefix
    for step in seg.stream(camera_frames, "the dog that overtakes the other"): ...

Built on the pipeline, not beside it: inputs are checked and loaded by
:mod:`fastreasonseg.pipeline.inputs` (``check_queries``, ``check_image``, ``load_input``), the
engine comes from :func:`fastreasonseg.reasoning.factory.build_engine`, and every query runs
through :func:`fastreasonseg.pipeline.segment.segment_twin`. ``frs segment``, ``frs serve`` and
``frs demo`` call this class, so they all take the same path.

Departures from the paper:

- perception runs on the scene alone unless ``set_scene(..., queries=[...])`` names the
  queries (their nouns then join the detector's vocabulary, as in ``frs segment``): a scene is
  built once and shared by every later question;
- :meth:`ReasoningSegmenter.stream` answers a video as it arrives: the reasoner re-reads the
  last ``window`` frames every ``every`` frames, and between rollouts the answer follows the
  tracked ids. The paper reasons over the whole clip at once; a live stream has no whole clip.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fastreasonseg.errors import FrsError

if TYPE_CHECKING:
    from fastreasonseg.api.results import SegmentationResult, StreamFrame
    from fastreasonseg.perception.config import PerceptionConfig
    from fastreasonseg.perception.media import VideoFrame
    from fastreasonseg.reasoning.backends.base import ReasonerBackend
    from fastreasonseg.reasoning.engine import RolloutConfig, RolloutEngine
    from fastreasonseg.reasoning.loader import ReasonerConfig
    from fastreasonseg.twin.core import DigitalTwin, Frame


@dataclass(frozen=True)
class Scene:
    """A scene ready for questions: its twin, what perception cost, and the picture behind it (for overlays)."""

    twin: DigitalTwin
    perception_s: float = 0.0
    source: Path | None = None  # the image/video file (or a twin's source.path when it exists)
    picture: np.ndarray | None = None  # the RGB image when it was given in memory


class Perception:
    """The perception models, each loaded on first use and kept: one image builder, one video builder.

    ``config`` is a :class:`~fastreasonseg.perception.config.PerceptionConfig` (the paper's
    models by default); builders can be injected (tests, a Ray worker). Missing weights are an
    :class:`~fastreasonseg.errors.FrsError` naming every missing model, raised before any loads.
    """

    def __init__(self, config: PerceptionConfig | None = None, *, image_builder: Any = None,
                 video_builder: Any = None):
        self._config = config  # None: the default config, made when first needed (nothing imported before)
        self._builders: dict[str, Any] = {"image": image_builder, "video": video_builder}

    @property
    def config(self) -> PerceptionConfig:
        if self._config is None:
            from fastreasonseg.perception.config import PerceptionConfig

            self._config = PerceptionConfig()
        return self._config

    @classmethod
    def resolve(cls, perception: Perception | PerceptionConfig | str | Path | None, device: str | None,
                preset: str | None = None) -> Perception:
        """A :class:`Perception` from an instance, a config, ``"default"``, a YAML config file, or None (default).

        ``preset`` (``"quality"`` or ``"fast"``) and ``device`` override the config's.
        """
        if isinstance(perception, Perception):
            return perception
        if (perception is None or perception == "default") and device is None and preset is None:
            return cls()
        from fastreasonseg.perception.config import PerceptionConfig

        try:
            if perception is None or perception == "default":
                config = PerceptionConfig()
            elif isinstance(perception, PerceptionConfig):
                config = perception
            else:
                config = PerceptionConfig.load(perception)
            return cls(config.with_overrides(device=device, preset=preset))
        except ValueError as exc:
            raise FrsError(str(exc)) from None

    def builder(self, kind: str) -> Any:
        builder = self._builders[kind]
        if builder is None:
            from fastreasonseg.perception import ImageTwinBuilder, VideoTwinBuilder

            builder = (ImageTwinBuilder if kind == "image" else VideoTwinBuilder)(self.config)
            builder.check_available()
            self._builders[kind] = builder
        return builder

    def perceive(self, path: Path, kind: str, queries: Sequence[str] = ()) -> DigitalTwin:
        """An image or video file (or frame folder) -> twin: the ``perceive`` hook of ``pipeline.inputs.load_input``."""
        return self.builder(kind).build(path, queries=queries)

    def image(self, image: np.ndarray, queries: Sequence[str] = ()) -> DigitalTwin:
        return self.builder("image").build(image, queries=queries)

    def stream(self, frames: Iterable[VideoFrame], queries: Sequence[str] = ()) -> Iterator[Frame]:
        return self.builder("video").stream(frames, queries=queries)


def video_frames(frames: Iterable[Any], fps: float | None) -> Iterator[VideoFrame]:
    """Checked :class:`VideoFrame` s from arrays / PIL images; time is index / fps (the index when fps is None)."""
    from fastreasonseg.perception.media import VideoFrame
    from fastreasonseg.pipeline.inputs import check_image

    if fps is not None and not fps > 0:
        raise FrsError(f"fps must be a positive number or None, got {fps!r}")
    for index, image in enumerate(frames):
        yield VideoFrame(index=index, time=index / fps if fps else float(index),
                         image=check_image(image, what=f"frame {index}"))


class _Frames:
    """Checked frames from any iterable of images (:func:`video_frames`), remembering the size of the first."""

    def __init__(self, frames: Iterable[Any], fps: float | None):
        self.frames = frames
        self.fps = fps
        self.size: tuple[int, int] | None = None

    def __iter__(self) -> Iterator[VideoFrame]:
        for frame in video_frames(self.frames, self.fps):
            size = (int(frame.image.shape[0]), int(frame.image.shape[1]))
            if self.size is None:
                self.size = size
            elif size != self.size:
                from fastreasonseg.pipeline.inputs import InputError

                raise InputError(f"frame {frame.index} is {size[1]}x{size[0]}, the video's first frame "
                                 f"{self.size[1]}x{self.size[0]}: every frame must have the same size")
            yield frame


def _is_picture(value: Any) -> bool:
    return (isinstance(value, np.ndarray) and value.ndim != 4) or type(value).__module__.startswith("PIL.")


class ReasoningSegmenter:
    """Reasoning segmentation from Python: one loaded reasoner (and perception), one current scene, many questions.

    Build with :meth:`from_pretrained` (or around an engine from ``build_engine``). Not
    thread-safe: a local reasoner keeps one prefix cache, so use one segmenter per thread
    (``frs serve`` runs its jobs on one worker thread for the same reason).
    """

    def __init__(self, engine: RolloutEngine, perception: Perception | None = None, *,
                 max_queries: int | None = None, max_query_chars: int | None = None):
        from fastreasonseg.pipeline.inputs import MAX_QUERIES, MAX_QUERY_CHARS

        self.engine = engine
        self.perception = perception or Perception()
        self.scene: Scene | None = None
        # The request limits of pipeline.inputs.check_queries; frs serve passes its configured ones.
        self.max_queries = max_queries or MAX_QUERIES
        self.max_query_chars = max_query_chars or MAX_QUERY_CHARS
        self._unbilled_perception_s = 0.0

    @classmethod
    def from_pretrained(cls, reasoner: str | Path | ReasonerConfig | ReasonerBackend = "default", *,
                        adapter: str | Path | None = None, backend: str = "auto", dtype: str = "auto",
                        threads: int | None = None, perception: Perception | PerceptionConfig | str | Path | None = None,
                        device: str | None = None, preset: str | None = None, rollout: RolloutConfig | None = None,
                        **rollout_settings: Any) -> ReasoningSegmenter:
        """Load the reasoner now; perception loads on the first picture.

        ``reasoner``: ``"default"`` (the embedded distilled student, offline), ``"base"``, a
        ``.gguf`` file, a model folder, a hub id, ``openai:MODEL@URL``, a ``ReasonerConfig`` or a
        loaded backend; ``adapter``/``backend``/``dtype``/``threads`` as in ``frs segment``.
        ``perception``: a ``PerceptionConfig``, ``"default"`` or a YAML file; ``preset``
        (``"quality"``, ``"fast"``: CPU-first models and sizes) and ``device`` (where the perception
        models run; the reasoner runs where its backend runs) override it. ``rollout_settings``
        override single :class:`~fastreasonseg.reasoning.engine.RolloutConfig` fields
        (``max_new_tokens=320``). A missing model or a bad setting is an
        :class:`~fastreasonseg.errors.FrsError` with the same message as on the command line.
        """
        from fastreasonseg.reasoning.backends.base import ReasonerBackend
        from fastreasonseg.reasoning.factory import build_engine
        from fastreasonseg.reasoning.loader import ReasonerConfig

        seeing = Perception.resolve(perception, device, preset)
        try:
            if isinstance(reasoner, (ReasonerConfig, ReasonerBackend)):
                if adapter is not None:
                    raise ValueError("give the adapter inside the ReasonerConfig, or a spec string with adapter=")
                spec: ReasonerConfig | ReasonerBackend = reasoner
            else:
                spec = ReasonerConfig(spec=str(reasoner), adapter=None if adapter is None else str(adapter),
                                      backend=backend, dtype=dtype, threads=threads)
            engine = build_engine(spec, rollout, **rollout_settings)
        except ValueError as exc:
            raise FrsError(str(exc)) from None
        return cls(engine, seeing)

    @property
    def reasoner_name(self) -> str:
        return self.engine.backend.name

    def close(self) -> None:
        """Release the reasoner (threads, sessions, model memory)."""
        self.engine.backend.close()

    def __enter__(self) -> ReasoningSegmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ scenes
    def load_scene(self, source: Any, *, queries: Sequence[str] = (), fps: float | None = None) -> Scene:
        """A :class:`Scene` from ``source`` without making it current (see :meth:`set_scene`)."""
        from fastreasonseg.pipeline.inputs import InputError, check_image, check_queries, find_source, load_input
        from fastreasonseg.twin.core import DigitalTwin, Source

        queries = check_queries(queries) if queries else []
        if isinstance(source, Scene):
            return source
        if isinstance(source, DigitalTwin):
            return Scene(twin=source, source=find_source(source))
        if isinstance(source, (str, Path)):
            twin, perception_s, path = load_input(source, queries, perceive=self.perception.perceive)
            return Scene(twin=twin, perception_s=perception_s, source=path)
        started = time.perf_counter()
        if _is_picture(source):
            picture = check_image(source)
            twin = self.perception.image(picture, queries)
            return Scene(twin=twin, perception_s=time.perf_counter() - started, picture=picture)
        if isinstance(source, (bytes, bytearray, dict)) or not isinstance(source, Iterable):
            raise InputError(f"cannot make a scene from {type(source).__name__}: give an (H, W, 3) uint8 RGB array, "
                             "a PIL image, a path (image, video, frame folder or twin JSON), video frames "
                             "(an iterable of images or a (T, H, W, 3) array) or a DigitalTwin")
        checked = _Frames(source, fps)
        frames = list(self.perception.stream(checked, queries))
        if not frames or checked.size is None:
            raise InputError("the video has no frames")
        height, width = checked.size
        twin = DigitalTwin(source=Source(kind="video", width=width, height=height, num_frames=frames[-1].index + 1,
                                         fps=fps), frames=tuple(frames), metadata=self.perception.config.twin_metadata())
        return Scene(twin=twin, perception_s=time.perf_counter() - started)

    def set_scene(self, source: Any, *, queries: Sequence[str] = (), fps: float | None = None) -> Scene:
        """Make ``source`` the current scene (perception runs now, once) and return it.

        ``source``: an (H, W, 3) uint8 RGB numpy array or a PIL image (perception), a path to an
        image, a video, a frame folder or a twin JSON (validated), video frames (an iterable of
        images or a (T, H, W, 3) array; ``fps`` sets their times), a :class:`DigitalTwin` or a
        :class:`Scene`. ``queries`` (optional) add their nouns to the detector's vocabulary.
        Wrong types, dtypes and shapes are an :class:`~fastreasonseg.pipeline.inputs.InputError`.
        """
        scene = self.load_scene(source, queries=queries, fps=fps)
        self.scene = scene
        self._unbilled_perception_s = scene.perception_s
        return scene

    # ------------------------------------------------------------------ questions
    def ask(self, query: str, scene: Any = None) -> SegmentationResult:
        """One question about the current scene (or ``scene``, which then becomes current)."""
        return self.ask_many([query], scene)[0]

    def ask_many(self, queries: Sequence[str], scene: Any = None) -> list[SegmentationResult]:
        """Several questions about one scene, in order; the twin's prompt prefix is shared (encoded once).

        Queries are checked as ``frs segment`` and ``frs serve`` check them (non-empty, at most
        500 characters, no control characters, at most 16 per call). Backends that batch
        decode the queries together.
        """
        from fastreasonseg.pipeline.inputs import check_queries

        if isinstance(queries, str):
            raise FrsError("ask_many takes a list of queries; use ask() for one")
        queries = check_queries(queries, max_queries=self.max_queries, max_chars=self.max_query_chars)
        if scene is not None:
            self.set_scene(scene)
        if self.scene is None:
            raise FrsError("no scene: call set_scene(image, path, frames or twin) first, or pass scene=")
        results = self._answer(self.scene.twin, queries, self._unbilled_perception_s)
        self._unbilled_perception_s = 0.0  # perception is paid once per scene: charged to its first query
        return results

    def _answer(self, twin: DigitalTwin, queries: list[str], perception_s: float) -> list[SegmentationResult]:
        from fastreasonseg.api.results import SegmentationResult
        from fastreasonseg.pipeline.segment import segment_twin

        segments = segment_twin(twin, queries, self.engine, perception_s=perception_s)
        return [SegmentationResult(segment, twin) for segment in segments]

    def stream(self, frames: Iterable[Any], query: str, *, window: int = 32, every: int = 8,
               fps: float | None = None) -> Iterator[StreamFrame]:
        """Answer ``query`` on a video as it arrives; a generator with one :class:`StreamFrame` per input frame.

        Perception tracks objects frame by frame (persistent ids, bounded SAM 2 memory). Every
        ``every`` frames (and on the first) the reasoner reads a twin of the last ``window``
        frames and answers; between rollouts the answer ids are followed on each new frame.
        Only the window is kept, so memory stays flat however long the stream runs.
        """
        from fastreasonseg.api.results import StreamFrame, frame_answer
        from fastreasonseg.pipeline.inputs import check_queries
        from fastreasonseg.twin.core import DigitalTwin, Source

        [query] = check_queries([query], max_chars=self.max_query_chars)
        if window < 1 or every < 1:
            raise FrsError(f"window and every must be >= 1 frames, got window={window}, every={every}")
        recent: deque[Frame] = deque(maxlen=window)
        answer: SegmentationResult | None = None
        checked = _Frames(frames, fps)
        for count, frame in enumerate(self.perception.stream(checked, [query])):
            assert checked.size is not None  # set by the first frame
            height, width = checked.size
            recent.append(frame)
            asked = count % every == 0
            if asked:
                twin = DigitalTwin(source=Source(kind="video", width=width, height=height,
                                                 num_frames=frame.index + 1, fps=fps), frames=tuple(recent))
                answer = self._answer(twin, [query], 0.0)[0]
            assert answer is not None  # the first frame always asks
            yield StreamFrame(frame=frame_answer(frame, answer.object_ids, height, width), answer=answer, asked=asked)
