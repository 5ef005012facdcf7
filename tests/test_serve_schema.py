"""Schemathesis against the served OpenAPI schema: generated requests to every operation, no 5xx.

Also checks that responses match their declared schemas, status codes and content types.
Examples per operation are capped (hypothesis settings) so the run stays in seconds.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from fastreasonseg.reasoning.engine import RolloutEngine  # noqa: E402
from fastreasonseg.serve import ServeConfig, create_app  # noqa: E402
from fastreasonseg.serve.service import SegmentService  # noqa: E402
from fastreasonseg.serve.testing import BoxPerceiver, EchoBackend  # noqa: E402

SERVICE = SegmentService(RolloutEngine(EchoBackend()), ServeConfig(request_timeout_s=30), perceiver=BoxPerceiver())
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(SERVICE))


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_errors(case) -> None:
    case.call_and_validate(checks=[not_a_server_error, response_schema_conformance, status_code_conformance,
                                   content_type_conformance])
