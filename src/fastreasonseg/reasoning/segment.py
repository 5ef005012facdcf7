"""From answers to masks and files: ``result.json`` (DESIGN.md contract), overlays, rollout details.

For each query the answer ids' masks are unioned per frame (an id absent from a frame adds
nothing there), every frame of the twin gets an entry, and the files are:

- ``result.json``: exactly the DESIGN.md contract ``{"query", "answer": {"object_ids"},
  "reasoning", "frames": [{"index", "mask"}], "timing": {"perception_s", "reasoning_s"}}``;
  one object for one query, a list for several;
- ``overlay.png`` (image) or ``overlay.gif`` (video; ``overlay_<i>`` per query when there
  are several): the answer highlighted by :func:`fastreasonseg.twin.render.render_frame`
  with the query, answer and reasoning written in a panel beside it;
- ``rollout.json``: what result.json leaves out, for debugging and benchmarks: failure
  codes, tool rounds, token counts, the reasoner and the rollout config.

Backgrounds: the input image/video when there is one; for a twin JSON its ``source.path``
when that file can be found (relative to the twin file), else a blank canvas.
GIF rather than MP4 because it needs no video encoder (``imageio-ffmpeg`` is not a
dependency); long videos are subsampled to at most ``max_gif_frames`` frames.
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fastreasonseg.twin.masks import encode_mask

if TYPE_CHECKING:
    from fastreasonseg.reasoning.engine import RolloutEngine, RolloutResult
    from fastreasonseg.twin.core import DigitalTwin

MAX_GIF_FRAMES = 120
PANEL_MIN_WIDTH = 420


@dataclass
class SegmentResult:
    """One query's outcome: the rollout, the per-frame answer masks and the timing."""

    query: str
    rollout: RolloutResult
    frames: list[dict[str, Any]]
    perception_s: float = 0.0
    reasoning_s: float = 0.0

    @property
    def object_ids(self) -> list[int]:
        return list(self.rollout.answer_ids)

    def to_json(self) -> dict[str, Any]:
        """The DESIGN.md result.json object, nothing more."""
        return {"query": self.query, "answer": {"object_ids": self.object_ids}, "reasoning": self.rollout.text,
                "frames": self.frames,
                "timing": {"perception_s": round(self.perception_s, 4), "reasoning_s": round(self.reasoning_s, 4)}}


def answer_frames(twin: DigitalTwin, object_ids: Iterable[int]) -> list[dict[str, Any]]:
    """``[{"index", "mask": RLE}]`` for every frame: the union of the answer ids' masks there."""
    ids = list(object_ids)
    return [{"index": frame.index, "mask": encode_mask(twin.union_mask(ids, frame.index))} for frame in twin.frames]


def segment_twin(twin: DigitalTwin, queries: Sequence[str], engine: RolloutEngine, *,
                 perception_s: float = 0.0) -> list[SegmentResult]:
    """Run every query on the twin (one shared prefix) and compute the answer masks.

    Perception ran once for all the queries, so its time is charged to the first (as ``frs serve`` does).
    """
    rollouts = engine.run_many(twin, list(queries))
    return [SegmentResult(query=rollout.query, rollout=rollout, frames=answer_frames(twin, rollout.answer_ids),
                          perception_s=perception_s if index == 0 else 0.0, reasoning_s=rollout.seconds)
            for index, rollout in enumerate(rollouts)]


# --------------------------------------------------------------------------- backgrounds


def find_source(twin: DigitalTwin, twin_path: str | Path | None = None) -> Path | None:
    """The twin's source image/video if it exists (absolute, relative to the twin file, or to the cwd)."""
    if not twin.source.path:
        return None
    raw = Path(twin.source.path).expanduser()
    candidates = [raw]
    if twin_path is not None and not raw.is_absolute():
        candidates.insert(0, Path(twin_path).parent / raw)
    return next((c for c in candidates if c.exists()), None)


def load_backgrounds(twin: DigitalTwin, source: Path | None) -> dict[int, np.ndarray]:
    """RGB images keyed by frame index for the twin's frames; empty when the source cannot be read."""
    if source is None:
        return {}
    from fastreasonseg.perception.media import MediaError, iter_frames, media_kind, read_image

    try:
        if media_kind(source) == "image":
            return {twin.frames[0].index: read_image(source)}
        wanted = {f.index for f in twin.frames}
        last = max(wanted)
        images = {}
        for frame in iter_frames(source, max_frames=last + 1):
            if frame.index in wanted:
                images[frame.index] = frame.image
            if frame.index >= last:
                break
        return images
    except (MediaError, OSError, ValueError):
        return {}  # a background is a nicety: a missing or unreadable source falls back to a blank canvas


# --------------------------------------------------------------------------- overlays


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def reasoning_panel(result: SegmentResult, twin: DigitalTwin, width: int, height: int) -> np.ndarray:
    """A white panel with the query, the answer (ids and labels), failures and the rollout text, wrapped."""
    from PIL import Image, ImageDraw

    font_size = 14
    font = _font(font_size)
    chars = max(20, int(width / (font_size * 0.55)))
    labels = {}
    for object_id in result.object_ids:
        try:
            labels[object_id] = twin.object(object_id).label
        except KeyError:
            labels[object_id] = "?"
    answer = ", ".join(f"{i} {labels[i]}" for i in result.object_ids) or "none"
    blue, red, dark = (10, 60, 160), (150, 20, 20), (20, 20, 20)
    lines = [(line, blue) for line in textwrap.wrap(f"Query: {result.query}", chars)]
    lines += [(line, blue) for line in textwrap.wrap(f"Answer: {answer}", chars)]
    codes = sorted({f.code for f in result.rollout.failures})
    if codes:
        lines += [(line, red) for line in textwrap.wrap("Problems: " + ", ".join(codes), chars)]
    lines.append(("", dark))
    for paragraph in result.rollout.text.split("\n"):
        lines += [(line, dark) for line in textwrap.wrap(paragraph, chars) or [""]]
    line_height = font_size + 4
    height = max(height, line_height * len(lines) + 16)
    panel = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    for row, (line, color) in enumerate(lines):
        draw.text((8, 8 + row * line_height), line, fill=color, font=font)
    return np.asarray(panel)


def overlay_frame(twin: DigitalTwin, result: SegmentResult, frame_index: int, image: np.ndarray | None,
                  panel: np.ndarray | None = None) -> np.ndarray:
    """The frame with the answer highlighted, the reasoning panel on its right (same height)."""
    from fastreasonseg.twin.render import render_frame

    picture = render_frame(twin, frame_index, image=image, highlight_ids=result.object_ids)
    if panel is None:
        panel = reasoning_panel(result, twin, max(PANEL_MIN_WIDTH, picture.shape[1] // 2), picture.shape[0])
    height = max(picture.shape[0], panel.shape[0])
    canvas = np.full((height, picture.shape[1] + panel.shape[1], 3), 255, dtype=np.uint8)
    canvas[: picture.shape[0], : picture.shape[1]] = picture
    canvas[: panel.shape[0], picture.shape[1]:] = panel
    return canvas


def write_overlay(path: Path, twin: DigitalTwin, result: SegmentResult, backgrounds: dict[int, np.ndarray],
                  max_gif_frames: int = MAX_GIF_FRAMES) -> Path:
    """PNG for a one-frame twin, GIF for a video (subsampled to ``max_gif_frames``)."""
    from PIL import Image

    first = twin.frames[0].index
    panel = reasoning_panel(result, twin, max(PANEL_MIN_WIDTH, twin.source.width // 2), twin.source.height)
    if len(twin.frames) == 1:
        path = path.with_suffix(".png")
        Image.fromarray(overlay_frame(twin, result, first, backgrounds.get(first), panel)).save(path)
        return path
    import cv2

    path = path.with_suffix(".gif")
    step = max(1, -(-len(twin.frames) // max_gif_frames))
    frames = []
    for frame in twin.frames[::step]:
        picture = overlay_frame(twin, result, frame.index, backgrounds.get(frame.index), panel)
        stamp = f"frame {frame.index}  t={frame.time:.2f}s"
        cv2.putText(picture, stamp, (twin.source.width + 8, picture.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (90, 90, 90), 1, cv2.LINE_AA)
        frames.append(Image.fromarray(picture))
    fps = twin.source.fps or 10.0
    duration_ms = int(1000 * step / fps)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=max(20, duration_ms), loop=0,
                   optimize=False)
    return path


# --------------------------------------------------------------------------- files


@dataclass
class OutputPaths:
    result: Path
    rollout: Path
    overlays: list[Path] = field(default_factory=list)


def write_outputs(out_dir: str | Path, twin: DigitalTwin, results: Sequence[SegmentResult], *,
                  backgrounds: dict[int, np.ndarray] | None = None, reasoner: str = "", config: Any = None,
                  overlays: bool = True) -> OutputPaths:
    """Write result.json, rollout.json and the overlays; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = [r.to_json() for r in results]
    result_path = out / "result.json"
    _write_json(result_path, payload[0] if len(payload) == 1 else payload)
    details = [{**r.rollout.to_dict(), "reasoner": reasoner,
                "config": asdict(config) if config is not None and hasattr(config, "__dataclass_fields__") else config}
               for r in results]
    rollout_path = out / "rollout.json"
    _write_json(rollout_path, details[0] if len(details) == 1 else details)
    paths = OutputPaths(result=result_path, rollout=rollout_path)
    if overlays:
        for index, result in enumerate(results):
            stem = "overlay" if len(results) == 1 else f"overlay_{index}"
            paths.overlays.append(write_overlay(out / stem, twin, result, backgrounds or {}))
    return paths


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


# --------------------------------------------------------------------------- the whole command


def read_queries(path: str | Path) -> list[str]:
    """Queries from a file: a JSON list of strings, JSONL with a ``query`` field, or one per line (``#`` comments)."""
    from fastreasonseg.errors import FrsError

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FrsError(f"cannot read queries file {path}: {exc}") from None
    try:
        if path.suffix == ".json":
            data = json.loads(text)
            if not isinstance(data, list) or not all(isinstance(q, str) for q in data):
                raise FrsError(f"{path}: expected a JSON list of query strings")
            queries = data
        elif path.suffix == ".jsonl":
            queries = []
            for number, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if not isinstance(row, dict) or not isinstance(row.get("query"), str):
                    raise FrsError(f"{path}:{number}: expected an object with a string 'query'")
                queries.append(row["query"])
        else:
            queries = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    except json.JSONDecodeError as exc:
        raise FrsError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    queries = [q.strip() for q in queries if q.strip()]
    if not queries:
        raise FrsError(f"{path} holds no queries")
    return queries


@dataclass
class SegmentReport:
    """What :func:`segment_file` did: the twin, one result per query, and the files written."""

    twin: DigitalTwin
    results: list[SegmentResult]
    paths: OutputPaths
    reasoner: str
    load_s: float = 0.0

    def labels(self, object_ids: Iterable[int]) -> list[tuple[int, str]]:
        out = []
        for object_id in object_ids:
            try:
                out.append((object_id, self.twin.object(object_id).label))
            except KeyError:
                out.append((object_id, "?"))
        return out


def load_input(input_path: str | Path, queries: Sequence[str] = ()) -> tuple[DigitalTwin, float, Path | None]:
    """The twin for a twin JSON, image, video or frame folder; perception time; the source for backgrounds."""
    from fastreasonseg.errors import FrsError
    from fastreasonseg.twin.core import DigitalTwin, TwinValidationError

    path = Path(input_path)
    if not path.exists():
        raise FrsError(f"input {path} not found")
    if path.suffix.lower() == ".json":
        try:
            twin = DigitalTwin.load(path)
        except TwinValidationError as exc:
            raise FrsError(str(exc)) from None
        return twin, 0.0, find_source(twin, path)
    try:
        from fastreasonseg.perception import build_twin
    except ImportError as exc:
        raise FrsError(f"perception is not available ({exc}): images and videos need "
                       "fastreasonseg.perception.build_twin; pass a twin JSON instead") from None
    from fastreasonseg.perception.media import MediaError

    start = time.perf_counter()
    try:
        twin = build_twin(path, queries=list(queries))
    except MediaError as exc:
        raise FrsError(str(exc)) from None
    return twin, time.perf_counter() - start, path


def segment_file(input_path: str | Path, queries: Sequence[str], out_dir: str | Path, reasoner: Any = None,
                 rollout: Any = None, *, overlays: bool = True,
                 log: Callable[[str], None] | None = None) -> SegmentReport:
    """The whole ``frs segment``: input -> twin -> reasoner -> masks -> files.

    ``reasoner`` is a :class:`~fastreasonseg.reasoning.loader.ReasonerConfig`, ``rollout`` a
    :class:`~fastreasonseg.reasoning.engine.RolloutConfig`; worked examples go into the
    prompt only when no adapter is applied (a distilled student is trained without them).
    """
    from dataclasses import replace

    from fastreasonseg.reasoning.engine import RolloutConfig, RolloutEngine
    from fastreasonseg.reasoning.loader import ReasonerConfig, load_reasoner

    say = log or (lambda _line: None)
    twin, perception_s, source = load_input(input_path, queries)
    say(f"twin: {twin.source.kind}, {len(twin.frames)} frame(s), {len(twin.track_ids)} object(s)"
        + (f" (perception {perception_s:.1f} s)" if perception_s else ""))
    reasoner = reasoner or ReasonerConfig()
    start = time.perf_counter()
    backend = load_reasoner(reasoner)
    load_s = time.perf_counter() - start
    say(f"reasoner: {backend.name}" + (f" + adapter {backend.adapter}" if backend.adapter else " (few-shot prompt)")
        + f", loaded in {load_s:.1f} s")
    config = replace(rollout or RolloutConfig(), few_shot=backend.adapter is None)
    try:
        results = segment_twin(twin, queries, RolloutEngine(backend, config), perception_s=perception_s)
    finally:
        backend.close()
    backgrounds = load_backgrounds(twin, source) if overlays else {}
    paths = write_outputs(out_dir, twin, results, backgrounds=backgrounds, reasoner=backend.name, config=config,
                          overlays=overlays)
    return SegmentReport(twin=twin, results=results, paths=paths, reasoner=backend.name, load_s=load_s)
