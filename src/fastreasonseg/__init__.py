"""fastreasonseg: fast reasoning segmentation over digital twins (after Shen & Unberath, CVPR 2026).

Pipeline stages are subpackages: ``twin`` (data type, text, tools) -> ``perception`` ->
``reasoning`` -> ``distill``; ``data`` makes synthetic scenes, ``metrics``/``eval`` score,
``pipeline`` wires a request through the stages, ``api`` is the Python API on top of it and
``cli`` the one command-line entry point. Nothing heavy is imported here: the API's names
(``from fastreasonseg import ReasoningSegmenter``) load on first use.
"""

from typing import Any

__version__ = "0.1.0"

# The public names of fastreasonseg.api, re-exported lazily so `import fastreasonseg` stays light.
_API = ("DEMOS", "FrameAnswer", "Perception", "ReasoningSegmenter", "Scene", "SegmentationResult", "Step",
        "StreamFrame", "Timing", "demo_scene", "twin_from_detections")

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        import fastreasonseg.api

        return getattr(fastreasonseg.api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
