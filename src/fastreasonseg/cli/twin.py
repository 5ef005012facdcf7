"""``frs twin validate|show``: check and inspect digital-twin JSON files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

twin_app = typer.Typer(help="Digital twins: validate, inspect, build.", no_args_is_help=True)


@twin_app.command("validate")
def validate_command(files: Annotated[list[Path], typer.Argument(help="Twin JSON files to check.")]) -> int:
    """Check twin files against schema v1; print every problem with its field path."""
    from rich.console import Console
    from rich.markup import escape

    from fastreasonseg.twin import DigitalTwin, TwinValidationError

    console = Console(highlight=False)
    bad = 0
    for path in files:
        try:
            twin = DigitalTwin.load(path)
        except TwinValidationError as exc:
            bad += 1
            console.print(f"[red]INVALID[/red] {escape(str(path))}")
            for error in exc.errors:
                # soft_wrap: a field path or file name is never broken across lines
                console.print(f"  {error}", markup=False, soft_wrap=True)
            continue
        n_objects = sum(len(f.objects) for f in twin.frames)
        console.print(f"[green]OK[/green] {escape(str(path))}: {twin.source.kind}, {len(twin.frames)} frame(s), "
                      f"{len(twin.track_ids)} track(s), {n_objects} object instance(s)")
    if bad:
        raise typer.Exit(code=1)
    return 0


@twin_app.command("show")
def show_command(
    file: Annotated[Path, typer.Argument(help="Twin JSON file.")],
    render: Annotated[Path | None, typer.Option("--render", help="Also draw masks and labels to this PNG.")] = None,
    frame: Annotated[int | None, typer.Option("--frame", help="Frame index to render (default: first).")] = None,
    image: Annotated[Path | None, typer.Option("--image", help="Draw over this image instead of a blank canvas.")] = None,
    as_text: Annotated[bool, typer.Option("--llm-text", help="Print the compact text the reasoner reads.")] = False,
) -> int:
    """Print a readable summary of a twin (and optionally render it)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from fastreasonseg.errors import FrsError
    from fastreasonseg.twin import DigitalTwin, TwinValidationError

    console = Console(highlight=False)
    try:
        twin = DigitalTwin.load(file)
    except TwinValidationError as exc:
        raise FrsError(str(exc)) from None
    src = twin.source
    console.print(f"[bold]{escape(str(file))}[/bold]  {src.kind} {src.width}x{src.height}, {len(twin.frames)} frame(s)"
                  + (f" at {src.fps} fps" if src.fps else "") + (f", source {escape(src.path)}" if src.path else ""))
    if as_text:
        try:
            from fastreasonseg.twin.serialize import serialize_twin
        except ModuleNotFoundError as exc:
            if exc.name != "fastreasonseg.twin.serialize":
                raise
            raise FrsError("--llm-text needs fastreasonseg.twin.serialize, which this install lacks") from None

        console.print(serialize_twin(twin), markup=False)
    table = Table("id", "label", "score", "frames", "box (first, XYXY px)", "area", "depth")
    for object_id in twin.track_ids:
        track = twin.track(object_id)
        first = track[0][1]
        frames = f"{track[0][0]}" if len(track) == 1 else f"{track[0][0]}-{track[-1][0]} ({len(track)})"
        depth = f"{first.depth.mean:.2f}" if first.depth else "-"
        # labels come from detectors or hand-written files: never interpret them as rich markup
        table.add_row(str(object_id), escape(first.label), f"{first.score:.2f}", frames,
                      ", ".join(f"{v:.0f}" for v in first.box), f"{first.area:.0f}", depth)
    console.print(table)
    if render is not None:
        from fastreasonseg.perception.media import MediaError, read_image
        from fastreasonseg.twin.render import render_frame, save_png

        background = None
        if image is not None:
            try:
                background = read_image(image)
            except MediaError as exc:
                raise FrsError(f"cannot read image {image}: {exc}") from None
        try:
            picture = render_frame(twin, frame, image=background)
        except KeyError as exc:
            raise FrsError(str(exc.args[0])) from None
        try:
            render.parent.mkdir(parents=True, exist_ok=True)
            save_png(picture, render)
        except (OSError, ValueError) as exc:  # PIL raises ValueError for an unknown file extension
            raise FrsError(f"cannot write {render}: {exc}") from None
        console.print(f"rendered to {escape(str(render))}")
    return 0


def register(app: typer.Typer) -> None:
    app.add_typer(twin_app, name="twin")
