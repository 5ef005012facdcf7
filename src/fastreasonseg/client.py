"""A small Python client for ``frs serve`` (httpx), for robots and scripts.

Example::

    from fastreasonseg.client import FrsClient
    with FrsClient("http://127.0.0.1:8000") as client:
        reply = client.segment("kitchen.jpg", ["the thing I would cut the bread with"])
        ids = reply["results"][0]["answer"]["object_ids"]
        # more questions about the same frame: no upload, no perception, twin prefix cached
        again = client.segment(scene=reply["scene"]["scene_id"], queries=["the nearest cup"])
        png = client.overlay("kitchen.jpg", "the nearest cup")       # bytes of a PNG

The same with curl::

    curl -s -F file=@kitchen.jpg -F query="the nearest cup" http://127.0.0.1:8000/v1/segment
    curl -s -F demo=kitchen -F query="the nearest object" "http://127.0.0.1:8000/v1/segment?format=png" -o overlay.png

Errors from the server become :class:`ServiceError` with its status and message; a busy
server (503 with ``Retry-After``) is retried up to ``retries`` times, waiting as told.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastreasonseg.errors import FrsError


class ServiceError(FrsError):
    """The service answered with an error status."""

    def __init__(self, status: int, message: str, request_id: str | None = None):
        super().__init__(f"server error {status}: {message}" + (f" (request {request_id})" if request_id else ""))
        self.status = status
        self.message = message
        self.request_id = request_id


class FrsClient:
    """Talks to one ``frs serve`` instance. ``timeout`` is per HTTP request, in seconds."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, timeout: float = 180.0, retries: int = 3,
                 max_retry_wait_s: float = 30.0):
        import httpx

        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.max_retry_wait_s = max_retry_wait_s
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def __enter__(self) -> FrsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ endpoints

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/v1/health").json()

    def info(self) -> dict[str, Any]:
        return self._request("GET", "/v1/info").json()

    def segment(self, source: str | Path | dict | bytes | None = None, queries: Sequence[str] | str = (), *,
                scene: str | None = None, demo: str | None = None, overlay: bool = False) -> dict[str, Any]:
        """Ask ``queries`` about a scene: a file path (image, video, twin JSON), a twin dict, raw bytes,
        a cached ``scene`` id or a bundled ``demo`` name. Returns the server's JSON (``results`` hold result.json)."""
        files, form = self._form(source, queries, scene=scene, demo=demo)
        if overlay:
            form["overlay"] = "true"
        return self._request("POST", "/v1/segment", data=form, files=files).json()

    def overlay(self, source: str | Path | dict | bytes | None = None, query: str = "", *, scene: str | None = None,
                demo: str | None = None) -> bytes:
        """The overlay PNG for one query."""
        files, form = self._form(source, [query], scene=scene, demo=demo)
        return self._request("POST", "/v1/segment", params={"format": "png"}, data=form, files=files).content

    def twin(self, source: str | Path | bytes) -> dict[str, Any]:
        """Perception only: the digital twin of an image or video (``reply["twin"]``)."""
        files, _ = self._form(source, ["-"])
        return self._request("POST", "/v1/twin", files=files).json()

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _form(source: Any, queries: Sequence[str] | str, *, scene: str | None = None,
              demo: str | None = None) -> tuple[dict | None, dict[str, Any]]:
        queries = [queries] if isinstance(queries, str) else list(queries)
        if not queries:
            raise ValueError("give at least one query")
        form: dict[str, Any] = {"query": queries}
        if scene is not None:
            form["scene"] = scene
        if demo is not None:
            form["demo"] = demo
        if source is None:
            return None, form
        if isinstance(source, dict):
            files = {"file": ("twin.json", json.dumps(source).encode(), "application/json")}
        elif isinstance(source, bytes):
            files = {"file": ("upload", source, "application/octet-stream")}
        else:
            path = Path(source)
            if not path.is_file():
                raise FrsError(f"{path}: no such file")
            # The server sniffs the type from the bytes; the name is only a hint for its logs.
            files = {"file": (path.name, path.read_bytes(), "application/octet-stream")}
        return files, form

    def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        import httpx

        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                raise FrsError(f"cannot reach {self.base_url}{url}: {exc}") from None
            if response.status_code == 503 and "retry-after" in response.headers and attempt < self.retries:
                try:
                    wait = float(response.headers["retry-after"])
                except ValueError:
                    wait = 1.0
                time.sleep(min(max(wait, 0.0), self.max_retry_wait_s))
                continue
            if response.status_code >= 400:
                try:
                    error = response.json()["error"]
                    raise ServiceError(response.status_code, error["message"], error.get("request_id"))
                except (ValueError, KeyError, TypeError):
                    raise ServiceError(response.status_code, response.text[:500]) from None
            return response
        raise AssertionError("unreachable")  # the loop returns or raises
