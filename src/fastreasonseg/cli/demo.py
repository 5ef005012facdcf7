"""``frs demo``: the offline main job (synthetic scenes, embedded student, overlays and a report).

The work is done by :func:`fastreasonseg.eval.demo.run_demo`; this module parses options only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fastreasonseg.errors import FrsError
from fastreasonseg.reasoning.engine import DEFAULT_TWIN_TOKENS


def demo(
    out: Annotated[Path, typer.Option("--out", help="output folder (created)")] = Path("demo_out"),
    reasoner: Annotated[str, typer.Option(help="reasoner spec: 'default' (embedded student), 'base' (without its adapter), a model dir, a .gguf")]
    = "default",
    adapter: Annotated[str | None, typer.Option(help="PEFT adapter directory to apply")] = None,
    backend: Annotated[str, typer.Option(help="auto, hf, llamacpp or openai")] = "auto",
    per_category: Annotated[int, typer.Option(help="queries per reasoning category")] = 2,
    seed: Annotated[int, typer.Option(help="scene and query seed")] = 0,
    threads: Annotated[int | None, typer.Option(help="decode threads (default: the backend's)")] = None,
    twin_max_tokens: Annotated[int, typer.Option(help="token budget of the twin text")] = DEFAULT_TWIN_TOKENS,
    max_new_tokens: Annotated[int, typer.Option(help="generated-token budget per query")] = 320,
) -> None:
    """Run the offline demo: synthetic image and video scenes, a few queries per category, overlays and report.md."""
    from rich.console import Console

    from fastreasonseg.eval.demo import DemoConfig, run_demo

    console = Console()
    try:
        config = DemoConfig(out=str(out), seed=seed, per_category=per_category, reasoner=reasoner, adapter=adapter,
                            backend=backend, threads=threads, twin_max_tokens=twin_max_tokens,
                            max_new_tokens=max_new_tokens)
    except ValueError as exc:
        raise FrsError(str(exc)) from None
    try:
        report = run_demo(config, log=lambda line: console.print(line, markup=False, highlight=False))
    except OSError as exc:
        raise FrsError(f"cannot write the demo to {out}: {exc}") from None
    console.print(f"{sum(r.correct for r in report.results)}/{len(report.results)} correct in "
                  f"{report.seconds['total']:.1f} s. Report: {out / 'report.md'}; overlays and result.json per query "
                  f"under {out / 'queries'}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
