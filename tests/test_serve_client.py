"""The Python client against a real server on 127.0.0.1: every method, errors, and retry on 503."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest

from fastreasonseg.client import FrsClient, ServiceError
from fastreasonseg.errors import FrsError
from fastreasonseg.reasoning.engine import RolloutEngine
from fastreasonseg.serve import ServeConfig, create_app
from fastreasonseg.serve.service import SegmentService
from fastreasonseg.serve.testing import BoxPerceiver, EchoBackend, free_port, running_server, sample_twin

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


def start(backend=None, **config):
    service = SegmentService(RolloutEngine(backend or EchoBackend()), ServeConfig(**config), perceiver=BoxPerceiver())
    return running_server(create_app(service)), service


@pytest.fixture(scope="module")
def base_url():
    server, _ = start()
    with server as base:
        yield base


def test_every_method(base_url: str, tmp_path) -> None:
    from PIL import Image

    twin = sample_twin()
    path = tmp_path / "scene.json"
    twin.save(path)
    with FrsClient(base_url) as client:
        assert client.health()["status"] == "ok"
        assert client.info()["reasoner"]["backend"] == "EchoBackend"
        from_file = client.segment(path, "the nearer cup")
        from_dict = client.segment(twin.to_dict(), ["the nearer cup"], overlay=True)
        assert from_file["results"][0]["answer"]["object_ids"] == [3]
        assert from_dict["results"][0]["answer"]["object_ids"] == [3]
        assert from_dict["results"][0]["overlay_png"]
        by_id = client.segment(scene=from_file["scene"]["scene_id"], queries=["a", "b"])
        assert len(by_id["results"]) == 2 and by_id["scene"]["cached"] is True
        png = client.overlay(demo="kitchen", query="the nearest object")
        assert np.asarray(Image.open(io.BytesIO(png))).shape == (360, 480, 3)
        image = np.full((50, 60, 3), 210, np.uint8)
        image[20:40, 10:30] = 20
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        reply = client.twin(buffer.getvalue())
        assert [o["box"] for o in reply["twin"]["frames"][0]["objects"]] == [[10.0, 20.0, 30.0, 40.0]]


def test_errors_carry_status_and_message(base_url: str) -> None:
    with FrsClient(base_url) as client:
        with pytest.raises(ServiceError) as caught:
            client.segment(b"not an image", "x")
        assert caught.value.status == 415 and "not a recognised" in caught.value.message and caught.value.request_id
        with pytest.raises(ServiceError, match="404"):
            client.segment(scene="0" * 32, queries="x")
        with pytest.raises(FrsError, match="no such file"):
            client.segment("/nonexistent/file.png", "x")
        with pytest.raises(ValueError, match="at least one query"):
            client.segment(demo="kitchen", queries=[])


def test_unreachable_server_is_a_clear_error() -> None:
    with FrsClient(f"http://127.0.0.1:{free_port()}", timeout=2) as client, pytest.raises(FrsError, match="cannot reach"):
        client.health()


def test_busy_server_is_retried_after_the_wait() -> None:
    gate = threading.Event()
    server, service = start(EchoBackend(gate=gate), queue_size=0, retry_after_s=1)
    with server as base:
        first: list = []
        holder = threading.Thread(target=lambda: first.append(FrsClient(base).segment(demo="kitchen", queries="x")))
        holder.start()
        for _ in range(300):
            if service.queue_state()["running"] == 1:
                break
            threading.Event().wait(0.02)
        with FrsClient(base, retries=0) as impatient, pytest.raises(ServiceError) as caught:
            impatient.segment(demo="kitchen", queries="y")
        assert caught.value.status == 503
        threading.Timer(0.3, gate.set).start()  # the running job ends while the patient client waits
        with FrsClient(base, retries=3) as patient:
            reply = patient.segment(demo="kitchen", queries="y")
        holder.join(timeout=30)
        assert reply["results"][0]["query"] == "y" and first and first[0]["results"][0]["query"] == "x"
        assert service.counters["rejected_queue_full"] >= 2
