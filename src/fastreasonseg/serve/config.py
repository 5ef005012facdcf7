"""The service's one typed config: where it listens and the limits that keep it safe.

Defaults are safe for a robot on the same machine: loopback only, 25 MB uploads, videos of
at most 20 s / 300 frames, 8 queries per request, at most 4 requests waiting behind the one
running (the reasoner keeps a single KV cache, so requests run one at a time), 120 s per
request. Every limit is validated here with a message that says how to fix it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from typing import Any

from fastreasonseg.pipeline.inputs import MAX_QUERIES, MAX_QUERY_CHARS

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServeConfig:
    """Limits and start-up settings of ``frs serve``.

    ``queue_size``: requests that may wait while one runs; beyond that the service answers
    503 with ``Retry-After`` instead of holding more uploads in memory.
    ``cache_size``: scenes (twin + source picture) kept by content hash for re-use.
    ``allow_remote``: must be set to bind to anything but loopback (``--allow-remote``).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    allow_remote: bool = False
    max_upload_mb: float = 25.0
    max_video_seconds: float = 20.0
    max_video_frames: int = 300
    max_image_pixels: int = 40_000_000
    max_queries: int = MAX_QUERIES
    max_query_chars: int = MAX_QUERY_CHARS
    request_timeout_s: float = 120.0
    queue_size: int = 4
    cache_size: int = 16
    retry_after_s: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if not is_loopback(self.host) and not self.allow_remote:
            raise ValueError(f"host {self.host!r} is not loopback; pass --allow-remote to serve other machines "
                             "(the service has no authentication: put it behind a proxy that has)")
        positive = {"max_upload_mb": self.max_upload_mb, "max_video_seconds": self.max_video_seconds,
                    "request_timeout_s": self.request_timeout_s}
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        at_least_one = {"max_video_frames": self.max_video_frames, "max_image_pixels": self.max_image_pixels,
                        "max_queries": self.max_queries, "max_query_chars": self.max_query_chars,
                        "cache_size": self.cache_size, "retry_after_s": self.retry_after_s}
        for name, value in at_least_one.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.queue_size < 0:
            raise ValueError(f"queue_size must be >= 0 (0 = no waiting, only the running request), got {self.queue_size}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
