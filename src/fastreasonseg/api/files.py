"""``frs segment`` as a function: a scene and its queries -> result.json, rollout.json and overlays.

:func:`segment_file` checks everything cheap first (the queries, the output folder, the input
and, for a twin JSON, its fields), then runs perception, loads the reasoner and asks through
:class:`~fastreasonseg.api.segmenter.ReasoningSegmenter`, so a bad input never costs a model
load or a rollout. The files are :func:`fastreasonseg.pipeline.segment.write_outputs`'.

Departure from the paper: none in the method; the file layout is this project's (docs/DESIGN.md section 8).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastreasonseg.api.results import SegmentationResult
    from fastreasonseg.pipeline.segment import OutputPaths, SegmentResult
    from fastreasonseg.twin.core import DigitalTwin


@dataclass
class SegmentReport:
    """What :func:`segment_file` did: the twin, one result per query, and the files written."""

    twin: DigitalTwin
    answers: list[SegmentationResult]
    paths: OutputPaths
    reasoner: str
    load_s: float = 0.0

    @property
    def results(self) -> list[SegmentResult]:
        """The pipeline results behind the answers (what result.json and rollout.json hold)."""
        return [answer.segment for answer in self.answers]

    def labels(self, object_ids: Iterable[int]) -> list[tuple[int, str]]:
        out = []
        for object_id in object_ids:
            try:
                out.append((object_id, self.twin.object(object_id).label))
            except KeyError:
                out.append((object_id, "?"))
        return out


def segment_file(input_path: str | Path, queries: Sequence[str], out_dir: str | Path, reasoner: Any = None,
                 rollout: Any = None, *, overlays: bool = True, perception: Any = None,
                 log: Callable[[str], None] | None = None) -> SegmentReport:
    """The whole ``frs segment``: input -> scene -> reasoner -> masks -> files.

    ``reasoner`` is a :class:`~fastreasonseg.reasoning.loader.ReasonerConfig` (or a spec
    string, default ``"default"``), ``rollout`` a :class:`~fastreasonseg.reasoning.engine.RolloutConfig`,
    ``perception`` a :class:`~fastreasonseg.perception.config.PerceptionConfig` for images and
    videos (default: the ``quality`` preset).
    """
    from fastreasonseg.api.segmenter import ReasoningSegmenter, Scene
    from fastreasonseg.pipeline.inputs import check_output_folder, check_queries, load_backgrounds, load_input
    from fastreasonseg.pipeline.segment import write_outputs

    say = log or (lambda _line: None)
    queries = check_queries(queries)
    check_output_folder(out_dir)  # before any work: a bad --out must not cost the reasoning
    # One scene per command: perception loads its models for this call (pipeline.inputs.load_input).
    twin, perception_s, source = load_input(input_path, queries, config=perception)
    say(f"twin: {twin.source.kind}, {len(twin.frames)} frame(s), {len(twin.track_ids)} object(s)"
        + (f" (perception {perception_s:.1f} s)" if perception_s else ""))
    start = time.perf_counter()
    segmenter = ReasoningSegmenter.from_pretrained(reasoner if reasoner is not None else "default", rollout=rollout)
    backend = segmenter.engine.backend
    load_s = time.perf_counter() - start
    say(f"reasoner: {backend.name}" + (f" + adapter {backend.adapter}" if backend.adapter else " (few-shot prompt)")
        + f", loaded in {load_s:.1f} s")
    with segmenter:
        segmenter.set_scene(Scene(twin=twin, perception_s=perception_s, source=source))
        answers = segmenter.ask_many(queries)
    backgrounds = load_backgrounds(twin, source) if overlays else {}
    paths = write_outputs(out_dir, twin, [answer.segment for answer in answers], backgrounds=backgrounds,
                          reasoner=backend.name, config=segmenter.engine.config, overlays=overlays)
    for warning in paths.warnings:
        say(f"warning: {warning}")
    return SegmentReport(twin=twin, answers=answers, paths=paths, reasoner=backend.name, load_s=load_s)
