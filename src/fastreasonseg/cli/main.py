"""The one entry point: ``frs <subcommand>`` (alias ``fastreasonseg``).

Each subcommand lives in its own module under ``fastreasonseg.cli`` and exposes
``register(app)``; the modules parse arguments only and call importable functions that do
the work, so heavy libraries load only when a command needs them.
"""

from __future__ import annotations

import importlib
import sys

import typer

from fastreasonseg.errors import FrsError

# Modules under fastreasonseg.cli that add commands; each defines register(app: typer.Typer).
COMMAND_MODULES: tuple[str, ...] = ("twin", "twin_build", "distill", "data", "serve", "demo", "segment", "eval", "bench")


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="frs",
        help="fastreasonseg: reasoning segmentation of images and videos over digital twins.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for name in COMMAND_MODULES:
        importlib.import_module(f"fastreasonseg.cli.{name}").register(app)
    return app


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    Click's standalone mode prints usage errors itself and ends with ``SystemExit``; we turn
    that into a return value so callers (tests, other programs) get an int, and we print
    :class:`FrsError` as one line without a traceback.
    """
    from rich.console import Console

    app = build_app()
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        typer.main.get_command(app).main(args=args, prog_name="frs", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        return code if isinstance(code, int) else 1
    except FrsError as exc:
        Console(stderr=True).print(f"error: {exc}", style="bold red", markup=False, highlight=False)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
