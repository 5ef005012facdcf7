"""``frs serve``: run the warm segmentation service (HTTP API + web page) on this machine.

Examples::

    frs serve                                   # http://127.0.0.1:8000, embedded student
    frs serve --port 9000 --reasoner path/to/model.gguf --queue-size 8
    frs serve --host 0.0.0.0 --allow-remote     # other machines too (no auth: use a proxy)

The work is done by :func:`fastreasonseg.serve.serve`; this module only parses arguments.
"""

from __future__ import annotations

from typing import Annotated

import typer


def serve_command(
    host: Annotated[str, typer.Option("--host", help="Address to bind; loopback unless --allow-remote.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="Allow a non-loopback --host.")] = False,
    reasoner: Annotated[str, typer.Option("--reasoner", help="Reasoner spec (see frs segment): 'default', a .gguf, "
                                          "a model folder, a hub id or openai:MODEL@URL.")] = "default",
    adapter: Annotated[str | None, typer.Option("--adapter", help="PEFT adapter folder for the reasoner.")] = None,
    backend: Annotated[str, typer.Option("--backend", help="auto, hf, llamacpp or openai.")] = "auto",
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", help="Largest accepted upload.")] = 25.0,
    max_video_seconds: Annotated[float, typer.Option("--max-video-seconds", help="Longest accepted video.")] = 20.0,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per request before 504.")] = 120.0,
    queue_size: Annotated[int, typer.Option("--queue-size", help="Requests that may wait behind the running one; "
                                            "more get 503 + Retry-After.")] = 4,
    detector: Annotated[str | None, typer.Option("--detector", help="OWLv2 hub id or local folder.")] = None,
    segmenter: Annotated[str | None, typer.Option("--segmenter", help="SAM 2 hub id or local folder.")] = None,
    depth_model: Annotated[str | None, typer.Option("--depth-model", help="Depth Anything hub id, local folder, "
                                                    "or 'none'.")] = None,
) -> None:
    """Serve segmentation over HTTP with a web page at /; models load once at start-up."""
    from fastreasonseg.errors import FrsError
    from fastreasonseg.perception.config import PerceptionConfig
    from fastreasonseg.reasoning.loader import ReasonerConfig
    from fastreasonseg.serve import serve
    from fastreasonseg.serve.config import ServeConfig

    try:
        config = ServeConfig(host=host, port=port, allow_remote=allow_remote, max_upload_mb=max_upload_mb,
                             max_video_seconds=max_video_seconds, request_timeout_s=timeout, queue_size=queue_size)
        reasoner_config = ReasonerConfig(spec=reasoner, adapter=adapter, backend=backend)
        overrides: dict = {"detector_model": detector, "segmenter_model": segmenter}
        overrides = {key: value for key, value in overrides.items() if value}
        if depth_model:
            overrides["depth_model"] = None if depth_model.lower() == "none" else depth_model
        perception = PerceptionConfig(device="cpu", local_files_only=True, **overrides)
    except ValueError as exc:
        raise FrsError(str(exc)) from None
    try:
        import fastapi  # noqa: F401
        import multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise FrsError(f"frs serve needs the serve extra ({exc.name} is missing): "
                       "pip install 'fastreasonseg[serve]'") from None
    typer.echo(f"frs serve: loading reasoner {reasoner!r}, then listening on http://{host}:{port}/", err=True)
    serve(config, reasoner_config, perception=perception)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
