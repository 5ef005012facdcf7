"""Stand-ins for tests, the load test and offline demos of the service: a scripted reasoner and perceiver.

:class:`EchoBackend` answers every query with a protocol-valid rollout (one ``depth_order``
tool round, then the nearest object), so tests exercise the service - uploads, caching,
queue, results - and not a model. :class:`BoxPerceiver` turns an image into a twin of the
bright blobs in it (connected components), standing in for OWLv2/SAM 2 whose weights are not
available offline. :func:`running_server` starts uvicorn on 127.0.0.1 in a thread.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastreasonseg.reasoning.backends.base import Generation, GenerationRequest, ReasonerBackend

if TYPE_CHECKING:
    from fastreasonseg.twin.core import DigitalTwin


class EchoBackend(ReasonerBackend):
    """Plans ``depth_order`` over the twin's ids, then answers with the nearest one.

    Reads the ids from the prompt's twin text (the engine serialises the twin into the user
    message as rows starting with the id), so it stays valid for any twin. ``delay_s`` sleeps
    per call (queue tests); ``gate`` (a threading.Event) blocks every call until set.
    """

    name = "echo"

    def __init__(self, delay_s: float = 0.0, gate: threading.Event | None = None):
        self.delay_s = delay_s
        self.gate = gate
        self.calls = 0
        self.lock = threading.Lock()

    def complete(self, request: GenerationRequest) -> Generation:
        import json
        import re

        with self.lock:
            self.calls += 1
        if self.gate is not None:
            self.gate.wait(timeout=30)
        if self.delay_s:
            time.sleep(self.delay_s)
        prefix = request.assistant_prefix
        if "<results>" not in prefix:
            ids = _ids_from_prompt(request.messages[-1]["content"])[:4]
            plan = json.dumps([{"tool": "depth_order", "args": {"ids": ids}}])
            text = f"<reason>compare the candidates' depth; the nearest one is meant</reason>\n<plan>{plan}</plan>"
        else:
            results = prefix[prefix.rfind("<results>") + len("<results>"):prefix.rfind("</results>")]
            nearest = re.search(r"\[\s*(\d+)\s*,", results)  # first [id, depth] pair of near_to_far
            answer = [int(nearest.group(1))] if nearest else []
            text = f"<answer>{json.dumps(answer)}</answer>"
        return Generation(text, "stop", prompt_tokens=len(request.messages[-1]["content"]) // 4,
                          new_tokens=max(1, len(text) // 4))


def _ids_from_prompt(text: str) -> list[int]:
    import re

    scene = text.split("Request:")[0] if "Request:" in text else text
    ids = [int(m) for m in re.findall(r"(?m)^\s*(\d+)\s", scene)]
    return list(dict.fromkeys(ids)) or [0]


class BoxPerceiver:
    """Image -> twin of its connected non-background regions (labelled "blob"), depth from the row.

    A deterministic stand-in for the real perception stack in tests and the load test; for a
    video it uses the first frame only. Counts its calls so tests can see cache hits.
    """

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, path: Path, kind: str) -> DigitalTwin:
        import cv2
        import numpy as np

        from fastreasonseg.perception.media import iter_frames, read_image
        from fastreasonseg.twin.core import DigitalTwin, Frame, Source, make_object

        self.calls += 1
        image = read_image(path) if kind == "image" else next(iter(iter_frames(path, max_frames=1))).image
        height, width = image.shape[:2]
        foreground = (np.abs(image.astype(np.int16) - np.median(image.reshape(-1, 3), axis=0)).sum(axis=2) > 60)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(foreground.astype(np.uint8))
        objects = []
        for component in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[component])
            if area < 16:
                continue
            mask = labels == component
            depth = 1.0 - (y + h) / height  # lower in the picture = nearer, as for a camera over a floor
            objects.append(make_object(len(objects) + 1, "blob", 0.9, [x, y, x + w, y + h], mask=mask,
                                       depth=(round(depth, 3), 0.01)))
        source = Source(kind="image", width=width, height=height, num_frames=1, path=None, fps=None)
        return DigitalTwin(source=source, frames=(Frame(index=0, time=0.0, objects=tuple(objects)),))


def sample_twin(width: int = 320, height: int = 240) -> DigitalTwin:
    """A small kitchen twin with masks: two cups at different depths, a knife and a table."""
    import numpy as np

    from fastreasonseg.twin.core import DigitalTwin, Frame, Source, make_object

    def ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        yy, xx = np.mgrid[0:height, 0:width]
        return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0

    table = np.zeros((height, width), bool)
    table[150:230, 20:300] = True
    objects = (
        make_object(3, "cup", 0.91, [60, 100, 100, 150], mask=ellipse(80, 125, 20, 25), depth=(0.2, 0.02)),
        make_object(8, "cup", 0.85, [200, 60, 230, 100], mask=ellipse(215, 80, 15, 20), depth=(0.7, 0.02)),
        make_object(5, "knife", 0.77, [120, 160, 220, 175], depth=(0.35, 0.01)),
        make_object(9, "dining table", 0.88, [20, 150, 300, 230], mask=table, depth=(0.5, 0.1)),
    )
    return DigitalTwin(source=Source(kind="image", width=width, height=height, path="kitchen.jpg"),
                       frames=(Frame(0, 0.0, objects),))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_server(app: Any, port: int | None = None, startup_timeout_s: float = 20.0) -> Iterator[str]:
    """Run ``app`` with uvicorn on 127.0.0.1 in a daemon thread; yields the base URL and stops it on exit."""
    import httpx
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="frs-serve-test", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_timeout_s
    while True:
        try:
            if httpx.get(f"{base}/v1/health", timeout=1.0).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"the test server did not start on {base}")
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
