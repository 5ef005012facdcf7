"""Perception: images and videos -> digital twins with SAM 2, OWLv2 and Depth Anything V2.

Public API::

    from fastreasonseg.perception import build_twin, PerceptionConfig
    twin = build_twin("kitchen.jpg")                  # or a video file / a folder of frames
    builder = ImageTwinBuilder(PerceptionConfig(device="cpu"))   # load once, build many
    twin = builder.build("a.jpg"); twin = builder.build("b.jpg")
    VideoTwinBuilder(config).build("clip.mp4")
    build_twin("kitchen.jpg", PerceptionConfig(preset="fast"))   # CPU-first sizes (perception.presets)

Oracle twins from ground truth live in :mod:`fastreasonseg.perception.annotations`; batch
builds (resumable, Ray) in :mod:`fastreasonseg.perception.batch`; the timing/memory benchmark
in :mod:`fastreasonseg.perception.bench`. Models load lazily: importing this package loads
no model and no heavy library.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastreasonseg.perception.config import PerceptionConfig

if TYPE_CHECKING:
    from fastreasonseg.perception.image import ImageTwinBuilder
    from fastreasonseg.perception.video import VideoTwinBuilder
    from fastreasonseg.twin.core import DigitalTwin

__all__ = ["ImageTwinBuilder", "PerceptionConfig", "VideoTwinBuilder", "build_twin"]


def build_twin(path: str | Path, config: PerceptionConfig | None = None, *, queries: Sequence[str] = (),
               extra_labels: Sequence[str] = ()) -> DigitalTwin:
    """Build the twin of an image, a video file or a folder of frames.

    ``queries`` (optional) add their nouns to the vocabulary when ``config.query_nouns``;
    ``extra_labels`` add labels for this call only. Loads the models on every call: to build
    many twins, keep an :class:`ImageTwinBuilder` / :class:`VideoTwinBuilder` instead.
    Raises :class:`fastreasonseg.errors.FrsError` for missing models (with download
    instructions) and :class:`fastreasonseg.perception.media.MediaError` for unreadable input.
    """
    from fastreasonseg.perception.media import media_kind

    config = config or PerceptionConfig()
    kind = media_kind(path)
    builder: Any
    if kind == "image":
        from fastreasonseg.perception.image import ImageTwinBuilder

        builder = ImageTwinBuilder(config)
    else:
        from fastreasonseg.perception.video import VideoTwinBuilder

        builder = VideoTwinBuilder(config)
    builder.check_available()
    return builder.build(path, queries=queries, extra_labels=extra_labels)


def __getattr__(name: str) -> Any:
    # Builders import numpy and the twin core; keep `import fastreasonseg.perception` cheap.
    if name == "ImageTwinBuilder":
        from fastreasonseg.perception.image import ImageTwinBuilder

        return ImageTwinBuilder
    if name == "VideoTwinBuilder":
        from fastreasonseg.perception.video import VideoTwinBuilder

        return VideoTwinBuilder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
