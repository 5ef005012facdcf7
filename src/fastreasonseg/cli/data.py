"""``frs data synth|stats``: generate synthetic items with teacher chains, and summarise a JSONL split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

data_app = typer.Typer(help="Synthetic training/evaluation data.", no_args_is_help=True)


@data_app.command("synth")
def synth_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (<split>.jsonl, .config.json, .stats.json).")],
    split: Annotated[str | None, typer.Option("--split", help="train, val or test.")] = None,
    n: Annotated[int | None, typer.Option("--n", help="Number of items (resuming completes up to N).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Dataset seed (items are deterministic per seed).")] = None,
    video: Annotated[bool | None, typer.Option("--video/--image", help="Video scenes (all three categories) "
                                                                     "or single images.")] = None,
    noise: Annotated[str | None, typer.Option("--noise", help="Perception noise: 0..1 or none/low/medium/high.")] = None,
    render: Annotated[bool | None, typer.Option("--render", help="Also draw each item (PNG, GIF for videos).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Worker processes (default 1).")] = None,
    category_weights: Annotated[str | None, typer.Option(
        "--category-weights", help="Relative draw weights of categories, e.g. temporal=2 or "
                                   "semantic=1,spatial=1,temporal=2 (others weigh 1; default: all equal).")] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="YAML with SynthConfig fields; options given "
                                                                       "on the command line override it.")] = None,
) -> int:
    """Generate synthetic scenes, queries, programs, answers and teacher rollouts (resumable)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from fastreasonseg.data.noise import parse_noise_level
    from fastreasonseg.data.synth import (
        ConfigMismatch,
        SynthConfig,
        check_resumable,
        parse_category_weights,
        synthesize,
    )
    from fastreasonseg.errors import FrsError

    values: dict = {}
    if config_file is not None:
        import yaml

        try:
            loaded = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise FrsError(f"cannot read --config {config_file}: {exc}") from None
        if not isinstance(loaded, dict):
            raise FrsError(f"--config {config_file}: expected a mapping of SynthConfig fields")
        values.update(loaded)
    overrides = {"split": split, "n": n, "seed": seed, "video": video, "render": render, "workers": workers}
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        if category_weights is not None:
            values["category_weights"] = parse_category_weights(category_weights)
        if noise is not None:
            values["noise"] = parse_noise_level(noise)
        elif "noise" in values:
            values["noise"] = parse_noise_level(values["noise"])
        config = SynthConfig.from_dict(values)
    except (ValueError, TypeError) as exc:
        raise FrsError(f"invalid synth settings: {exc}") from None

    try:
        check_resumable(config, out)
    except ConfigMismatch as exc:
        raise FrsError(str(exc)) from None
    console = Console(stderr=True, highlight=False)
    columns = (TextColumn(f"[bold]{config.split}[/bold]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("synth", total=config.n)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            stats = synthesize(config, out, progress=progress)
        except ConfigMismatch as exc:
            raise FrsError(str(exc)) from None
        except OSError as exc:
            raise FrsError(f"cannot write to {out}: {exc}") from None
    _print_stats(stats, Console(highlight=False))
    gen = stats["generation"]
    Console(highlight=False).print(f"wrote {gen['items_written']} item(s) in {gen['seconds']} s to "
                                   f"{out / (config.split + '.jsonl')}", markup=False)
    return 0


@data_app.command("stats")
def stats_command(files: Annotated[list[Path], typer.Argument(help="Synthetic JSONL files.")]) -> int:
    """Category x level counts, holdout subsets and teacher-chain lengths of synthetic JSONL files."""
    from rich.console import Console

    from fastreasonseg.data.items import ItemError
    from fastreasonseg.data.synth import split_stats
    from fastreasonseg.errors import FrsError

    console = Console(highlight=False)
    for path in files:
        try:
            stats = split_stats(path)
        except (ItemError, KeyError, TypeError) as exc:
            raise FrsError(f"{path}: not a synthetic item file ({exc})") from None
        console.print(f"[bold]{path}[/bold]: {stats['n']} items", highlight=False)
        _print_stats(stats, console)
    return 0


def _print_stats(stats: dict, console) -> None:
    from rich.table import Table

    table = Table("category", "L1", "L2", "L3", "L4", "total")
    cells = stats["category_level"]
    for category in ("semantic", "spatial", "temporal"):
        counts = [cells.get(f"{category}/L{level}", 0) for level in (1, 2, 3, 4)]
        if sum(counts):
            table.add_row(category, *map(str, counts), str(sum(counts)))
    console.print(table)
    tokens = stats["teacher_tokens_estimate"]
    if tokens.get("n"):
        console.print(f"teacher chains (estimated tokens): median {tokens['median']:.0f}, p90 {tokens['p90']:.0f}, "
                      f"max {tokens['max']:.0f}; holdout subsets {stats['holdout']}; "
                      f"teacher IoU mean {stats['teacher_iou_mean']}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
