"""The FastAPI app of ``frs serve``: routes, error mapping, request ids, upload limits.

Endpoints (OpenAPI schema at ``/openapi.json``)::

    POST /v1/segment   multipart: file (image, video or twin JSON) | scene (id of a cached scene)
                       | demo (bundled scene name); query (repeat for several); overlay=true for
                       base64 PNGs; ?format=png returns the first query's overlay as image/png
    POST /v1/twin      multipart: file -> the twin (perception only)
    GET  /v1/health    liveness and queue state
    GET  /v1/info      loaded models, versions, device, limits
    GET  /v1/demos     bundled demo scenes; /v1/demos/{name}.png their picture
    GET  /             the web page (assets under /static, no external CDN)

Every error is ``{"error": {"status", "message", "request_id"}}`` with a 4xx/5xx status; an
unexpected exception is logged with its traceback and answered 500 without internals.
Swagger UI and ReDoc are off because FastAPI loads them from a CDN; the schema is served.

No ``from __future__ import annotations`` here: FastAPI reads the route signatures at
definition time, and the fastapi names they use are imported inside :func:`create_app`.
"""

import asyncio
import json
import logging
import re
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastreasonseg.serve.models import (
    DemoInfo,
    ErrorResponse,
    Health,
    Info,
    SceneInfo,
    SegmentResponse,
    TwinResponse,
)
from fastreasonseg.serve.service import PerceptionUnavailable, QueueFull, Scene, SegmentService
from fastreasonseg.serve.uploads import UploadError

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("fastreasonseg.serve")
STATIC_DIR = Path(__file__).parent / "static"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Room for the multipart envelope and the text fields on top of the file itself.
_FORM_OVERHEAD_BYTES = 256 * 1024
SEGMENT_FIELDS = frozenset({"file", "scene", "demo", "query", "overlay"})
TWIN_FIELDS = frozenset({"file"})
ERRORS: dict = {code: {"model": ErrorResponse} for code in (400, 404, 413, 415, 422, 503, 504)}


class _BodyTooLarge(Exception):
    pass


class RequestMiddleware:
    """Pure ASGI: assigns the request id, refuses oversized bodies before they are parsed, logs one JSON line.

    The body limit is enforced on the declared Content-Length and again on the bytes actually
    received (chunked uploads declare none), so no upload larger than the limit is buffered.
    """

    def __init__(self, app: Any, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        offered = headers.get("x-request-id", "")
        request_id = offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = {"code": 0}

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode()),
                                                  (b"x-content-type-options", b"nosniff")]}
            await send(message)

        received = 0

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        declared = headers.get("content-length", "")
        try:
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                raise _BodyTooLarge
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            if status["code"] == 0:
                limit_mb = (self.max_body_bytes - _FORM_OVERHEAD_BYTES) / 1024 / 1024
                await _send_json(send_with_id, 413, _error_body(413, f"upload too large: the limit is {limit_mb:g} MB",
                                                                 request_id))
        finally:
            log.info(json.dumps({"event": "request", "request_id": request_id, "method": scope.get("method"),
                                 "path": scope.get("path"), "status": status["code"],
                                 "ms": round((time.perf_counter() - started) * 1000, 1),
                                 "bytes_in": received}))


async def _send_json(send: Any, status: int, body: dict, headers: list | None = None) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": payload})


def _error_body(status: int, message: str, request_id: str) -> dict:
    return {"error": {"status": status, "message": message, "request_id": request_id}}


def scene_info(scene: Scene) -> SceneInfo:
    from fastreasonseg.serve.results import object_rows

    source = scene.twin.source
    return SceneInfo(scene_id=scene.scene_id, kind=scene.kind, width=source.width, height=source.height,
                     num_frames=len(scene.twin.frames), cached=scene.cached, objects=object_rows(scene.twin))


def check_queries(queries: list[str], max_queries: int, max_chars: int) -> list[str]:
    """The CLI's query rules (:func:`fastreasonseg.pipeline.inputs.check_queries`) as a 422."""
    from fastreasonseg.pipeline.inputs import QueryError
    from fastreasonseg.pipeline.inputs import check_queries as check

    try:
        return check(queries, max_queries=max_queries, max_chars=max_chars)
    except QueryError as exc:
        raise UploadError(422, f"{exc} (form field 'query')") from None


def create_app(service: SegmentService) -> "FastAPI":
    """The app around a built :class:`SegmentService` (tests inject one with a scripted reasoner)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, File, Form, Query, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException  # base of fastapi's; also raised for bad multipart, 404, 405

    import fastreasonseg

    config = service.config

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        service.start()
        yield
        service.close()  # worker and upload folder; the caller owns the models (see serve())

    app = FastAPI(title="fastreasonseg", version=fastreasonseg.__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description="Reasoning segmentation over digital twins: upload a scene, ask queries, get masks.")
    app.add_middleware(RequestMiddleware, max_body_bytes=config.max_upload_bytes + _FORM_OVERHEAD_BYTES)
    app.state.service = service

    def request_id(request: Request) -> str:
        return request.scope.get("state", {}).get("request_id", "-")

    def error(request: Request, status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse(_error_body(status, message, request_id(request)), status_code=status, headers=headers)

    @app.exception_handler(UploadError)
    async def _upload_error(request: Request, exc: UploadError) -> JSONResponse:
        return error(request, exc.status, exc.message)

    @app.exception_handler(QueueFull)
    async def _queue_full(request: Request, exc: QueueFull) -> JSONResponse:
        return error(request, 503, f"server busy: {exc}; retry after {config.retry_after_s} s",
                     headers={"Retry-After": str(config.retry_after_s)})

    @app.exception_handler(PerceptionUnavailable)
    async def _no_perception(request: Request, exc: PerceptionUnavailable) -> JSONResponse:
        return error(request, 503, f"perception is not available on this server: {exc}. "
                                   "Send a digital twin JSON instead, or pick a demo scene.")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for problem in exc.errors()[:8]:
            loc = list(problem.get("loc", ()))
            if len(loc) > 1 and loc[0] in ("body", "query", "path", "header"):
                loc = loc[1:]  # the field name says enough
            where = ".".join(str(p) for p in loc)
            parts.append(f"{where or 'request'}: {problem.get('msg', 'invalid')}")
        return error(request, 422, "invalid request: " + "; ".join(parts))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return error(request, exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        from fastreasonseg.errors import FrsError

        if isinstance(exc, FrsError):  # missing resources reported by the library (e.g. a model)
            return error(request, 503, str(exc))
        log.exception("unhandled error in request %s", request_id(request))
        return error(request, 500, f"internal error (request id {request_id(request)}); see the server log")

    async def run_job(job: Any) -> Any:
        future = service.submit(job)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout=config.request_timeout_s)
        except asyncio.TimeoutError:
            future.cancel()  # frees the slot now if still waiting; a running job keeps it until it ends
            raise UploadError(504, f"the request took longer than {config.request_timeout_s:g} s and was abandoned") \
                from None

    async def check_fields(request: Request, allowed: frozenset[str]) -> None:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return  # FastAPI reports the missing fields itself
        form = await request.form()
        unknown = sorted(set(form.keys()) - allowed)
        if unknown:
            raise UploadError(422, f"unknown form fields {unknown}; allowed: {sorted(allowed)}")

    async def read_upload(file: UploadFile) -> bytes:
        data = await file.read()
        if len(data) > config.max_upload_bytes:
            raise UploadError(413, f"upload too large: the limit is {config.max_upload_mb:g} MB")
        return data

    @app.post("/v1/segment", response_model=SegmentResponse, responses={**ERRORS, 200: {
        "content": {"image/png": {}}, "description": "result.json per query, or the overlay PNG with format=png"}})
    async def segment(
        request: Request,
        query: Annotated[list[str], Form(description="a query; repeat the field for several")],
        file: Annotated[UploadFile | None, File(description="image, short video or twin JSON")] = None,
        scene: Annotated[str | None, Form(description="scene_id of a scene sent before")] = None,
        demo: Annotated[str | None, Form(description="name of a bundled demo scene")] = None,
        overlay: Annotated[bool, Form(description="include base64 overlay PNGs")] = False,
        format: Annotated[Literal["json", "png"], Query(description="png: answer with the overlay image")] = "json",
    ) -> Any:
        await check_fields(request, SEGMENT_FIELDS)
        queries = check_queries(query, config.max_queries, config.max_query_chars)
        sources = [name for name, value in (("file", file), ("scene", scene), ("demo", demo)) if value]
        if len(sources) != 1:
            raise UploadError(422, "send exactly one of: file (image, video or twin JSON), scene (a scene_id) or demo"
                                   + (f"; got {', '.join(sources)}" if sources else ""))
        if format == "png" and len(queries) != 1:
            raise UploadError(422, "format=png answers one query; send exactly one")
        data = await read_upload(file) if file is not None else None
        content_type = file.content_type if file is not None else None

        def job() -> tuple[Scene, list[dict], bytes | None]:
            if data is not None:
                picked = service.scene_from_upload(data, content_type)
            elif demo:
                picked = service.demo_scene(demo)
            else:
                picked = service.cached_scene(scene or "")
                if picked is None:
                    raise UploadError(404, f"no cached scene {scene!r}: the cache keeps the {config.cache_size} most "
                                           "recent scenes; upload the file again")
                picked = Scene(picked.scene_id, picked.kind, picked.twin, picked.picture, picked.perception_s, True)
            results = service.segment(picked, queries, overlay=overlay and format == "json")
            png = None
            if format == "png":
                from fastreasonseg.serve.results import overlay_png

                png = overlay_png(picked.twin, picked.picture, results[0]["answer"]["object_ids"])
            return picked, results, png

        picked, results, png = await run_job(job)
        if png is not None:
            return Response(png, media_type="image/png",
                            headers={"X-Answer-Ids": json.dumps(results[0]["answer"]["object_ids"])})
        return SegmentResponse(request_id=request_id(request), scene=scene_info(picked), results=results)

    @app.post("/v1/twin", response_model=TwinResponse, responses=ERRORS)
    async def twin(request: Request,
                   file: Annotated[UploadFile, File(description="image, short video or twin JSON")]) -> TwinResponse:
        await check_fields(request, TWIN_FIELDS)
        data = await read_upload(file)
        picked = await run_job(lambda: service.scene_from_upload(data, file.content_type))
        perception_s = 0.0 if picked.cached else picked.perception_s
        return TwinResponse(request_id=request_id(request), scene=scene_info(picked),
                            perception_s=round(perception_s, 4), twin=picked.twin.to_dict())

    @app.get("/v1/health", response_model=Health)
    async def health() -> Health:
        return Health(status="ok", queue=service.queue_state())

    @app.get("/v1/info", response_model=Info)
    async def info() -> Info:
        return Info(**service_info(service))

    @app.get("/v1/demos", response_model=list[DemoInfo])
    async def demos() -> list[DemoInfo]:
        from fastreasonseg.api.demos import DEMOS

        return [DemoInfo(name=name, scene_type=spec[0], suggested_query=spec[2]) for name, spec in DEMOS.items()]

    @app.get("/v1/demos/{name}.png", responses={200: {"content": {"image/png": {}}}, 404: {"model": ErrorResponse}})
    async def demo_picture(name: str) -> Response:
        import io

        from PIL import Image

        picked = await run_job(lambda: service.demo_scene(name))
        buffer = io.BytesIO()
        Image.fromarray(picked.picture).save(buffer, format="PNG")
        return Response(buffer.getvalue(), media_type="image/png")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers={
            # The page loads only its own scripts and styles; overlays arrive as data: URLs.
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
                                       "base-uri 'none'; frame-ancestors 'none'"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def service_info(service: SegmentService) -> dict[str, Any]:
    """What ``GET /v1/info`` reports: models, versions, device and limits."""
    from importlib.metadata import PackageNotFoundError, version

    import fastreasonseg
    from fastreasonseg.api.demos import DEMOS

    def package_version(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    backend = service.engine.backend
    perceiver = service.perceiver
    perception: dict[str, Any] = {"perceiver": type(perceiver).__name__}
    perception_config = getattr(perceiver, "config", None)
    if perception_config is None and type(perceiver).__name__ == "DefaultPerceiver":
        from fastreasonseg.perception.config import PerceptionConfig

        perception_config = PerceptionConfig(device="cpu", local_files_only=True)
    if perception_config is not None:
        perception.update({"detector": perception_config.detector_model, "segmenter": perception_config.segmenter_model,
                           "depth": perception_config.depth_model})
    perception["loaded"] = sorted(getattr(perceiver, "_builders", {}))
    perception["unavailable"] = getattr(perceiver, "unavailable", None)
    return {
        "version": fastreasonseg.__version__,
        "reasoner": {"name": service.reasoner_name, "backend": type(backend).__name__,
                     "adapter": getattr(backend, "adapter", None)},
        "perception": perception,
        "device": str(getattr(backend, "device", "cpu")),
        "versions": {name: package_version(name) for name in
                     ("torch", "transformers", "llama_cpp_python", "fastapi", "uvicorn", "pydantic")},
        "limits": {key: value for key, value in service.config.to_dict().items() if key not in ("host", "port")},
        "demos": [{"name": name, "scene_type": spec[0], "suggested_query": spec[2]} for name, spec in DEMOS.items()],
        "counters": dict(service.counters),
        "uptime_s": round(time.time() - service.started, 1),
    }
