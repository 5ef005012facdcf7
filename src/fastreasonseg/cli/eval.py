"""``frs eval``: benchmark evaluation (work done by :func:`fastreasonseg.eval.runner.run_eval`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fastreasonseg.errors import FrsError
from fastreasonseg.reasoning.backends.gguf_merge import DEFAULT_LORA_MODE
from fastreasonseg.reasoning.engine import DEFAULT_TWIN_TOKENS


def eval_command(
    benchmark: Annotated[str, typer.Option(help="synthetic, reasonseg, reasonseg_parquet, llmseg40k, revos, davis, "
                                                "jitbench or rvtbench")],
    root: Annotated[Path | None, typer.Option(help="the benchmark's folder")] = None,
    items: Annotated[Path | None, typer.Option(help="synthetic items JSONL (with --benchmark synthetic)")] = None,
    split: Annotated[str | None, typer.Option(help="benchmark split (default: the loader's)")] = None,
    reasoner: Annotated[str, typer.Option(help="reasoner spec (default: the embedded student; "
                                                     "'programmatic' = the synthetic items' teacher chains; "
                                                     "'chance' = one uniformly drawn twin id, the floor)")] = "default",
    adapter: Annotated[str | None, typer.Option(help="PEFT adapter directory")] = None,
    backend: Annotated[str, typer.Option(help="auto, hf, llamacpp or openai")] = "auto",
    threads: Annotated[int | None, typer.Option(help="decode threads")] = None,
    lora_mode: Annotated[str, typer.Option(help="llama.cpp: adapter merged into a cached copy of the model "
                                                "(merged) or applied per token (runtime)")] = DEFAULT_LORA_MODE,
    perception: Annotated[str, typer.Option(help="annotations (oracle twins) or models")] = "annotations",
    out: Annotated[Path, typer.Option(help="output folder; rerun with the same folder to resume")] = Path("eval_out"),
    limit: Annotated[int | None, typer.Option(help="evaluate the first N samples only")] = None,
    twin_max_tokens: Annotated[int, typer.Option(help="token budget of the twin text")] = DEFAULT_TWIN_TOKENS,
    max_new_tokens: Annotated[int, typer.Option(help="generated-token budget per query")] = 640,
    max_tool_rounds: Annotated[int, typer.Option(help="tool rounds per query (0 = no tools: the static-twin "
                                                      "ablation)")] = 3,
    disable_tool: Annotated[list[str] | None, typer.Option(help="switch a tool off, e.g. knowledge (repeatable): "
                                                                 "the 'without the tool' ablation")] = None,
    option: Annotated[list[str] | None, typer.Option(help="loader option KEY=JSON_VALUE (repeatable)")] = None,
) -> None:
    """Evaluate a reasoner on a benchmark: samples.jsonl (resumable), summary.json/.md and plots."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fastreasonseg.eval.runner import EvalConfig, run_eval

    options = {}
    for entry in option or []:
        key, sep, value = entry.partition("=")
        if not sep or not key:
            raise FrsError(f"--option {entry!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value  # a bare string
    try:
        config = EvalConfig(benchmark=benchmark, root=str(root) if root else None, items=str(items) if items else None,
                            split=split, reasoner=reasoner, adapter=adapter, backend=backend, threads=threads,
                            lora_mode=lora_mode, perception=perception, out=str(out), limit=limit, twin_max_tokens=twin_max_tokens,
                            max_new_tokens=max_new_tokens, max_tool_rounds=max_tool_rounds,
                            disabled_tools=list(disable_tool or []), options=options)
    except ValueError as exc:
        raise FrsError(str(exc)) from None
    console = Console()
    with Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  transient=True) as bar:
        task = bar.add_task("eval", total=limit)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = run_eval(config, progress=progress)
    overall = summary["overall"]
    numbers = ", ".join(f"{m} {100 * overall[m]:.1f}" for m in summary["headline"] if overall[m] is not None)
    console.print(f"{summary['count']} samples: {numbers}; parse failures {summary['parse_failures']}. "
                  f"Summary: {out / 'summary.md'}", markup=False, highlight=False)


def compare_command(
    runs: Annotated[list[str], typer.Argument(help="NAME=FOLDER of an `frs eval --out` folder (repeat)")],
    out: Annotated[Path | None, typer.Option(help="also write the Markdown here")] = None,
) -> None:
    """Tables of several eval runs side by side: headline metrics and gIoU by category x level."""
    from fastreasonseg.eval.compare import compare_markdown, load_run, parse_run_specs

    text = compare_markdown([(name, load_run(folder)) for name, folder in parse_run_specs(runs)])
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    print(text, end="")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
    app.command("eval-compare")(compare_command)
