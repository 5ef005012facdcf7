"""``frs serve``: a warm segmentation service (FastAPI) with a web page, for robots and people.

Public API::

    from fastreasonseg.serve import ServeConfig, build_service, create_app
    service = build_service(ServeConfig(), ReasonerConfig("default"))   # loads the reasoner once
    app = create_app(service)                                           # FastAPI app; uvicorn runs it
    serve(ServeConfig(port=8000))                                       # both, and blocks

Reasoning goes through the Python API (:class:`fastreasonseg.api.ReasoningSegmenter`).
Tests build :class:`~fastreasonseg.serve.service.SegmentService` directly around an
engine from :func:`~fastreasonseg.reasoning.factory.build_engine` with a scripted backend and a stand-in
perceiver. Web stack: FastAPI + uvicorn (the ``serve`` extra); the page is plain HTML/JS
served from ``serve/static`` (no framework, no CDN). The Python client is
:mod:`fastreasonseg.client`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastreasonseg.serve.config import ServeConfig

if TYPE_CHECKING:
    from fastreasonseg.reasoning.engine import RolloutConfig
    from fastreasonseg.reasoning.loader import ReasonerConfig
    from fastreasonseg.serve.service import SegmentService

__all__ = ["ServeConfig", "build_service", "create_app", "serve"]


def build_service(config: ServeConfig | None = None, reasoner: ReasonerConfig | None = None,
                  rollout: RolloutConfig | None = None, *, perceiver: Any = None) -> SegmentService:
    """Load the reasoner (once, through the Python API) and wrap it in a service. FrsError when it cannot load."""
    from fastreasonseg.api.segmenter import ReasoningSegmenter
    from fastreasonseg.reasoning.loader import ReasonerConfig
    from fastreasonseg.serve.service import SegmentService

    reasoner = reasoner or ReasonerConfig()
    segmenter = ReasoningSegmenter.from_pretrained(reasoner, rollout=rollout)
    return SegmentService(segmenter, config or ServeConfig(), perceiver=perceiver, reasoner_name=reasoner.spec)


def create_app(service: SegmentService) -> Any:
    from fastreasonseg.serve.app import create_app as _create_app

    return _create_app(service)


def serve(config: ServeConfig, reasoner: ReasonerConfig | None = None, rollout: RolloutConfig | None = None,
          perception: Any = None) -> None:
    """Build the service and run uvicorn until interrupted (one process, one worker: the models are loaded once).

    ``perception`` is a :class:`~fastreasonseg.perception.PerceptionConfig` (default: the
    paper's models from the local cache, on the CPU). Missing perception weights do not stop
    the server: it logs why, answers image/video uploads with 503 and that reason, and still
    serves twins and demo scenes.
    """
    import logging

    import uvicorn

    from fastreasonseg.serve.service import DefaultPerceiver

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    perceiver = DefaultPerceiver(perception)
    problem = perceiver.preload()
    if problem is not None:
        logging.getLogger("fastreasonseg.serve").warning(
            "perception unavailable, serving twins and demo scenes only: %s", problem.splitlines()[0])
    service = build_service(config, reasoner, rollout, perceiver=perceiver)
    try:
        uvicorn.run(create_app(service), host=config.host, port=config.port, workers=1, access_log=False,
                    log_level="info", timeout_graceful_shutdown=5)
    finally:
        service.close()
        service.engine.backend.close()
