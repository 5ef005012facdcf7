"""``frs segment INPUT --query Q``: reasoning segmentation of a twin JSON, an image or a video.

Examples::

    frs segment scene.json --query "the cup nearest to the camera" --out out/
    frs segment kitchen.jpg -q "what can I cut the bread with?" -q "the largest plate"
    frs segment clip.mp4 --queries queries.txt --reasoner Qwen/Qwen3-0.6B --adapter student/
    frs segment scene.json -q "the red car" --reasoner openai:Qwen/Qwen3-8B@http://localhost:8000/v1

Images and videos go through perception (:func:`fastreasonseg.perception.build_twin`).
The work is done by :func:`fastreasonseg.api.files.segment_file` (the Python API); this module only
parses arguments and prints a summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def segment_command(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="A twin JSON, an image, a video or a folder "
                                               "of video frames.")],
    query: Annotated[list[str] | None, typer.Option("--query", "-q", help="A query (repeatable).")] = None,
    queries_file: Annotated[Path | None, typer.Option("--queries", help="A file of queries: one per line, a JSON "
                                                      "list of strings, or JSONL with a 'query' field.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for result.json, rollout.json and the "
                                      "overlay.")] = Path("frs_out"),
    reasoner: Annotated[str, typer.Option("--reasoner", help="'default' (embedded student), 'base' (without its adapter), a .gguf file, a model "
                                          "folder, a hub id, or openai:MODEL@URL.")] = "default",
    adapter: Annotated[str | None, typer.Option("--adapter", help="A PEFT LoRA adapter folder.")] = None,
    backend: Annotated[str, typer.Option("--backend", help="auto, hf, llamacpp or openai.")] = "auto",
    dtype: Annotated[str, typer.Option("--dtype", help="transformers backend: auto, float32, bfloat16.")] = "auto",
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads for decoding.")] = None,
    max_tool_rounds: Annotated[int, typer.Option("--max-tool-rounds", help="Tool rounds per query.")] = 3,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Generated tokens per query.")] = 640,
    unconstrained: Annotated[bool, typer.Option("--unconstrained", help="Do not constrain decoding to the "
                                                "protocol grammar (llama.cpp).")] = False,
    no_overlay: Annotated[bool, typer.Option("--no-overlay", help="Skip the overlay pictures.")] = False,
    preset: Annotated[str | None, typer.Option("--preset", help="Perception for images and videos: quality (the "
                                               "paper's models at full size, the default) or fast (CPU-first input "
                                               "sizes, detect-mode video).")] = None,
) -> int:
    """Find the objects each query refers to; write result.json, rollout.json and an overlay."""
    from rich.console import Console
    from rich.markup import escape

    from fastreasonseg.api.files import segment_file
    from fastreasonseg.errors import FrsError
    from fastreasonseg.pipeline.inputs import read_queries
    from fastreasonseg.reasoning.engine import RolloutConfig
    from fastreasonseg.reasoning.loader import ReasonerConfig

    queries = list(query or [])
    if queries_file is not None:
        queries += read_queries(queries_file)
    if not queries:
        raise FrsError("give at least one query with --query/-q or --queries FILE")
    try:
        perception = None
        if preset is not None:  # imported only when asked: a twin JSON input needs no perception
            from fastreasonseg.perception.config import PerceptionConfig

            perception = PerceptionConfig(preset=preset)
        reasoner_config = ReasonerConfig(spec=reasoner, adapter=adapter, backend=backend, dtype=dtype, threads=threads)
        rollout_config = RolloutConfig(max_tool_rounds=max_tool_rounds, max_new_tokens=max_new_tokens,
                                       constrained=not unconstrained)
    except ValueError as exc:
        raise FrsError(str(exc)) from None
    console = Console(highlight=False)
    report = segment_file(input_path, queries, out, reasoner_config, rollout_config, overlays=not no_overlay,
                          perception=perception, log=lambda line: console.print(escape(line)))
    for result in report.results:
        rollout = result.rollout
        answer = escape(", ".join(f"{i} {label}" for i, label in report.labels(result.object_ids))) \
            or "[red]no answer[/red]"
        console.print(f"[bold]{escape(result.query)}[/bold] -> {answer}  "
                      f"({rollout.new_tokens} tokens, {rollout.seconds:.2f} s)")
        if rollout.failures:
            console.print("  problems: " + escape(", ".join(sorted({f.code for f in rollout.failures}))))
        for note in rollout.notes:
            console.print("  note: " + escape(note))
    console.print(f"wrote {report.paths.result}" + "".join(f", {p}" for p in report.paths.overlays))
    backend_errors = [f for r in report.results for f in r.rollout.failures if f.code == "backend_error"]
    if len(backend_errors) == len(report.results):  # the reasoner never answered: say why, fail the command
        raise FrsError(f"the reasoner failed on every query: {backend_errors[0].message}")
    return 0


def register(app: typer.Typer) -> None:
    app.command("segment")(segment_command)
