"""The Python API: load a reasoner once, set a scene once, ask many questions, get typed numpy results.

::

    from fastreasonseg import ReasoningSegmenter, demo_scene

    seg = ReasoningSegmenter.from_pretrained("default")   # the embedded distilled student, offline
    seg.set_scene(demo_scene("kitchen").twin)             # or an RGB array, a PIL image, a path, video frames
    result = seg.ask("the object on the far left")
    result.object_ids, result.labels, result.masks, result.boxes, result.reasoning, result.timing
    result.to_json()                                      # exactly one result.json entry (docs/DESIGN.md)
    result.to_detections()                                # supervision.Detections (optional extra)

Modules: :mod:`~.segmenter` (:class:`ReasoningSegmenter`, :class:`Scene`, :class:`Perception`),
:mod:`~.results` (:class:`SegmentationResult`, :class:`FrameAnswer`, :class:`StreamFrame`,
:class:`Timing`, :class:`Step`), :mod:`~.convert` (supervision), :mod:`~.demos` (bundled scenes),
:mod:`~.files` (``frs segment``: a scene and its queries to result.json, rollout.json and overlays).
The package sits on top of :mod:`fastreasonseg.pipeline`; the CLI, the service and the demo
call it. Nothing heavy is imported until a name is used. docs/API.md is the reference page.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "ReasoningSegmenter": "segmenter", "Scene": "segmenter", "Perception": "segmenter",
    "SegmentationResult": "results", "FrameAnswer": "results", "StreamFrame": "results", "Timing": "results",
    "Step": "results", "twin_from_detections": "convert", "demo_scene": "demos", "DEMOS": "demos",
    "segment_file": "files", "SegmentReport": "files",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
