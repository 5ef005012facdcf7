"""Pipeline steps 2-4: twin -> engine -> answers -> masks -> files.

The path of one request (``frs segment scene.json -q "the nearest cup"``)::

    cli/segment.py            parse arguments, print the summary
    api/files.py              segment_file: check queries and the output folder, then the steps below
    pipeline/inputs.py        load_input: twin JSON (validated) or image/video -> perception -> twin
    api/segmenter.py          ReasoningSegmenter: from_pretrained -> reasoning/factory.build_engine
                              (load the reasoner, resolve the rollout config); set_scene; ask_many
    pipeline/segment.py       segment_twin: every caller's one path from queries to answer masks
    reasoning/engine.py       run_many: prompt (reasoning/prompt.py) -> generate -> pause at </plan>
                              -> DT tools (twin/tools) -> <results> -> resume -> parse (protocol.py)
    pipeline/segment.py       answer_frames: union of the answer ids' masks per frame (COCO RLE)
                              write_outputs: result.json, rollout.json, then overlays (pipeline/overlay.py)

For each query the answer ids' masks are unioned per frame (an id absent from a frame adds
nothing there), every frame of the twin gets an entry, and the files are:

- ``result.json``: the contract of docs/DESIGN.md, ``{"query", "answer": {"object_ids"},
  "reasoning", "frames": [{"index", "mask"}], "timing": {"perception_s", "reasoning_s"}}``;
  always a list with one entry per query (also for a single query);
- ``rollout.json``: what result.json leaves out, for debugging and benchmarks: failure
  codes, tool rounds, token counts, the reasoner and the rollout config, and the twin's
  perception settings when perception made it (a list too);
- ``overlay.png`` (image) or ``overlay.gif`` (video; ``overlay_<i>`` per query when there
  are several): the answer highlighted with the query, answer and reasoning beside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fastreasonseg.io import atomic_write_json
from fastreasonseg.twin.masks import encode_mask

if TYPE_CHECKING:
    from fastreasonseg.reasoning.engine import RolloutEngine, RolloutResult
    from fastreasonseg.twin.core import DigitalTwin


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


@dataclass
class OutputPaths:
    """The files written; ``warnings`` say what could not be drawn (the results are written regardless)."""

    result: Path
    rollout: Path
    overlays: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def write_outputs(out_dir: str | Path, twin: DigitalTwin, results: Sequence[SegmentResult], *,
                  backgrounds: dict[int, np.ndarray] | None = None, reasoner: str = "", config: Any = None,
                  overlays: bool = True) -> OutputPaths:
    """Write result.json and rollout.json, then the overlays; returns the paths.

    result.json is always a list with one entry per query (docs/DESIGN.md). The results are
    on disk before anything touches a picture: an overlay that cannot be drawn (an
    undecodable or oversized background, a full disk) becomes a warning, never a lost result.
    """
    from fastreasonseg.pipeline.overlay import write_overlay

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = [r.to_json() for r in results]
    result_path = out / "result.json"
    atomic_write_json(result_path, payload, indent=1, ensure_ascii=False)
    details = [{**r.rollout.to_dict(), "reasoner": reasoner,
                "config": asdict(config) if config is not None and hasattr(config, "__dataclass_fields__") else config}
               for r in results]
    if "perception" in twin.metadata:  # how the twin was made (preset, models, input sizes)
        details = [{**entry, "perception": twin.metadata["perception"]} for entry in details]
    rollout_path = out / "rollout.json"
    atomic_write_json(rollout_path, details, indent=1, ensure_ascii=False)
    paths = OutputPaths(result=result_path, rollout=rollout_path)
    if overlays:
        for index, result in enumerate(results):
            stem = "overlay" if len(results) == 1 else f"overlay_{index}"
            try:
                paths.overlays.append(write_overlay(out / stem, twin, result, backgrounds or {}))
            except Exception as exc:
                paths.warnings.append(f"overlay {stem} not written: {type(exc).__name__}: {exc}")
    return paths
