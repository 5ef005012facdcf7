"""Pipeline step 1: what the user gave -> a digital twin (+ the picture behind it) and the query list.

A twin JSON is read and validated; an image, a video or a frame folder goes through
perception (:func:`fastreasonseg.perception.build_twin`, or the caller's loaded models through
``perceive``). In-memory pictures (numpy arrays, PIL images) are checked by :func:`check_image`
before any model sees them. The source picture is looked up
for overlays: the input image/video itself, or for a twin JSON its ``source.path`` (absolute,
relative to the twin file, or to the working directory); a missing picture is no error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fastreasonseg.errors import FrsError

if TYPE_CHECKING:
    from fastreasonseg.twin.core import DigitalTwin

# Limits every entry point applies to requests (frs segment, frs serve, the Python API).
MAX_QUERIES = 16
MAX_QUERY_CHARS = 500


class QueryError(FrsError):
    """A request text that cannot be asked (empty, too long, control characters, too many)."""


class InputError(FrsError):
    """A picture, frame or scene that cannot be segmented (wrong type, dtype or shape)."""


def check_image(image: Any, *, what: str = "image") -> np.ndarray:
    """``image`` as an (H, W, 3) uint8 RGB array, or :class:`InputError` saying what is wrong and how to fix it.

    Accepts a numpy array or a PIL image (any mode; converted to RGB as image files are).
    """
    if hasattr(image, "convert") and type(image).__module__.startswith("PIL."):
        image = np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise InputError(f"{what} must be a numpy array or a PIL image, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        hint = (" (drop the alpha channel: image[..., :3])" if image.ndim == 3 and image.shape[2] == 4 else
                " (grayscale: np.repeat(image[..., None], 3, axis=2))" if image.ndim == 2 else "")
        raise InputError(f"{what} must have shape (H, W, 3) RGB, got {image.shape}{hint}")
    if image.dtype != np.uint8:
        raise InputError(f"{what} must be uint8 (0-255), got {image.dtype}"
                         + (" (scale to 0-255 and cast: (image * 255).astype(np.uint8))"
                            if image.dtype.kind == "f" else ""))
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f"{what} is empty: shape {image.shape}")
    return image


def check_queries(queries: Sequence[str], *, max_queries: int = MAX_QUERIES,
                  max_chars: int = MAX_QUERY_CHARS) -> list[str]:
    """The queries stripped of surrounding space, or :class:`QueryError` saying which one is wrong and why."""
    cleaned = [q.strip() if isinstance(q, str) else q for q in queries]
    if not cleaned or not any(isinstance(q, str) and q for q in cleaned):
        raise QueryError("give at least one non-empty query")
    if len(cleaned) > max_queries:
        raise QueryError(f"{len(cleaned)} queries; the limit is {max_queries} per request")
    for number, query in enumerate(cleaned, 1):
        if not isinstance(query, str):
            raise QueryError(f"query {number} must be text, got {type(query).__name__}")
        if not query:
            raise QueryError(f"query {number} is empty")
        if len(query) > max_chars:
            raise QueryError(f"query {number} has {len(query)} characters; the limit is {max_chars}")
        if any((ord(ch) < 32 and ch not in "\t\n") or ord(ch) == 127 for ch in query):
            raise QueryError(f"query {number} contains control characters")
    return cleaned


def check_output_folder(out_dir: str | Path) -> Path:
    """Create ``out_dir`` (and its parents) now, before any work, or say why it cannot be used."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FrsError(f"output folder {out} exists and is not a folder; choose another --out")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise FrsError(f"output folder {out} cannot be created: {parent} is a file; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FrsError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    import os

    if not os.access(out, os.W_OK | os.X_OK):
        raise FrsError(f"output folder {out} is not writable; choose another --out")
    return out


def read_queries(path: str | Path) -> list[str]:
    """Queries from a file: a JSON list of strings, JSONL with a ``query`` field, or one per line (``#`` comments)."""
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


# perceive(path, kind, queries) -> twin, kind "image" or "video": perception with models the caller keeps loaded.
Perceive = Callable[[Path, str, Sequence[str]], "DigitalTwin"]


def load_input(input_path: str | Path, queries: Sequence[str] = (), *, perceive: Perceive | None = None,
               config: Any = None) -> tuple[DigitalTwin, float, Path | None]:
    """The twin for a twin JSON, image, video or frame folder; perception time; the source for backgrounds.

    Images and videos go through ``perceive`` when given (the Python API's loaded models),
    else through :func:`fastreasonseg.perception.build_twin` (models loaded for this call, with
    ``config``, a ``PerceptionConfig``; None: the default ``quality`` preset).
    """
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
    from fastreasonseg.perception.media import MediaError, media_kind

    start = time.perf_counter()
    try:
        if perceive is not None:
            twin = perceive(path, "image" if media_kind(path) == "image" else "video", list(queries))
        else:
            from fastreasonseg.perception import build_twin

            twin = build_twin(path, config, queries=list(queries))
    except MediaError as exc:
        raise FrsError(str(exc)) from None
    return twin, time.perf_counter() - start, path


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
    except (MediaError, OSError, ValueError, MemoryError):
        return {}  # a background is a nicety: a missing or unreadable source falls back to a blank canvas
