"""``frs segment``: result.json contract, overlays, query files, input errors; the reasoner is a local stub
endpoint (deterministic), plus one slow run with the embedded default student."""

from __future__ import annotations

import json
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastreasonseg.cli.main import main
from fastreasonseg.twin import DigitalTwin, Frame, Source, decode_mask, make_object


def image_twin(path: str | None = None) -> DigitalTwin:
    mask_cup = np.zeros((40, 60), dtype=bool)
    mask_cup[5:15, 5:20] = True
    objects = (make_object(3, "cup", 0.9, [5, 5, 20, 15], mask=mask_cup, depth=(0.2, 0.01)),
               make_object(8, "cup", 0.8, [30, 5, 50, 20], depth=(0.6, 0.01)),
               make_object(9, "table", 0.7, [0, 20, 60, 40], depth=(0.5, 0.1)))
    return DigitalTwin(source=Source(kind="image", width=60, height=40, path=path), frames=(Frame(0, 0.0, objects),))


def video_twin() -> DigitalTwin:
    frames = []
    for index in range(4):
        objects = [make_object(1, "car", 0.9, [5 + 5 * index, 5, 15 + 5 * index, 15])]
        if index < 2:
            objects.append(make_object(2, "dog", 0.8, [30, 20, 40, 30]))
        frames.append(Frame(index, index / 10, tuple(objects)))
    return DigitalTwin(source=Source(kind="video", width=60, height=40, fps=10.0, num_frames=4), frames=tuple(frames))


class Reasoner:
    """A stub chat endpoint: answers each query with the ids after 'ids=' in it (e.g. 'the cup ids=3,8')."""

    def __init__(self) -> None:
        outer = self
        self.bodies: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append(body)
                query = body["messages"][-1]["content"].rsplit("Request: ", 1)[-1]
                ids = query.split("ids=")[1] if "ids=" in query else ""
                content = f"<reason>asked for {ids or 'nothing'}</reason>\n<answer>[{ids}]"
                data = json.dumps({"choices": [{"message": {"content": content}, "finish_reason": "stop"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        self.spec = f"openai:stub@http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.fixture(autouse=True)
def wide_console(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "500")  # rich wraps messages at the terminal width; keep them on one line


@pytest.fixture
def reasoner():
    stub = Reasoner()
    yield stub
    stub.server.shutdown()
    stub.server.server_close()


def segment(*args: str) -> int:
    return main(["segment", *args])


def test_result_json_is_the_design_contract(tmp_path: Path, reasoner: Reasoner) -> None:
    twin = image_twin()
    twin.save(tmp_path / "scene.json")
    assert segment(str(tmp_path / "scene.json"), "-q", "the cups ids=3,8", "--out", str(tmp_path / "out"),
                   "--reasoner", reasoner.spec) == 0
    [result] = json.loads((tmp_path / "out" / "result.json").read_text())  # a list, also for one query
    assert set(result) == {"query", "answer", "reasoning", "frames", "timing"}
    assert result["query"] == "the cups ids=3,8"
    assert result["answer"] == {"object_ids": [3, 8]}
    assert result["reasoning"] == "<reason>asked for 3,8</reason>\n<answer>[3,8]</answer>"
    assert set(result["timing"]) == {"perception_s", "reasoning_s"} and result["timing"]["perception_s"] == 0.0
    [frame] = result["frames"]
    assert frame["index"] == 0
    assert np.array_equal(decode_mask(frame["mask"]), twin.union_mask([3, 8], 0))
    overlay = Image.open(tmp_path / "out" / "overlay.png")
    assert overlay.size[1] >= 40 and overlay.size[0] > 60  # the picture plus the reasoning panel
    [details] = json.loads((tmp_path / "out" / "rollout.json").read_text())
    assert details["failures"] == [] and details["reasoner"].startswith("openai:stub@")
    assert details["config"]["few_shot"] is True and details["tokens"]["new"] == 0


def test_several_queries_from_flags_and_a_file(tmp_path: Path, reasoner: Reasoner) -> None:
    image_twin().save(tmp_path / "scene.json")
    (tmp_path / "queries.txt").write_text("# comment\nthe table ids=9\n\nno such thing ids=\n")
    out = tmp_path / "out"
    assert segment(str(tmp_path / "scene.json"), "-q", "first ids=3", "--queries", str(tmp_path / "queries.txt"),
                   "-o", str(out), "--reasoner", reasoner.spec) == 0
    results = json.loads((out / "result.json").read_text())
    assert [r["query"] for r in results] == ["first ids=3", "the table ids=9", "no such thing ids="]
    assert [r["answer"]["object_ids"] for r in results] == [[3], [9], []]
    assert not decode_mask(results[2]["frames"][0]["mask"]).any()
    assert sorted(p.name for p in out.glob("overlay_*.png")) == ["overlay_0.png", "overlay_1.png", "overlay_2.png"]
    details = json.loads((out / "rollout.json").read_text())
    assert "empty_answer" in [f["code"] for f in details[2]["failures"]]
    # One twin, three queries: every request shares the prompt up to the query.
    prompts = [b["messages"][-1]["content"].rsplit("Request: ", 1)[0] for b in reasoner.bodies]
    assert len(set(prompts)) == 1


def test_video_twin_gets_a_mask_per_frame_and_a_gif(tmp_path: Path, reasoner: Reasoner) -> None:
    twin = video_twin()
    twin.save(tmp_path / "clip.json")
    assert segment(str(tmp_path / "clip.json"), "-q", "the dog ids=2", "-o", str(tmp_path / "out"),
                   "--reasoner", reasoner.spec) == 0
    [result] = json.loads((tmp_path / "out" / "result.json").read_text())
    assert [f["index"] for f in result["frames"]] == [0, 1, 2, 3]
    present = [bool(decode_mask(f["mask"]).any()) for f in result["frames"]]
    assert present == [True, True, False, False]  # the dog leaves after frame 1
    gif = Image.open(tmp_path / "out" / "overlay.gif")
    assert gif.n_frames == 4


def test_overlay_draws_over_the_source_image(tmp_path: Path, reasoner: Reasoner) -> None:
    Image.fromarray(np.full((40, 60, 3), (200, 30, 30), dtype=np.uint8)).save(tmp_path / "photo.png")
    image_twin(path="photo.png").save(tmp_path / "scene.json")  # relative to the twin file
    assert segment(str(tmp_path / "scene.json"), "-q", "x ids=3", "-o", str(tmp_path / "out"),
                   "--reasoner", reasoner.spec) == 0
    overlay = np.asarray(Image.open(tmp_path / "out" / "overlay.png").convert("RGB"))
    assert tuple(overlay[38, 2]) != (235, 235, 235)  # not the blank canvas
    assert overlay[30:38, 1:4].reshape(-1, 3).mean(axis=0)[0] > 150  # the red photo shows through


@pytest.mark.parametrize(("make_args", "message"), [
    (lambda d: [str(d / "missing.json"), "-q", "x"], "not found"),
    (lambda d: [str(d / "bad.json"), "-q", "x"], "frames[0].objects[0].box"),
    (lambda d: [str(d / "scene.json")], "at least one query"),
    (lambda d: [str(d / "scene.json"), "--queries", str(d / "empty.txt")], "holds no queries"),
    (lambda d: [str(d / "scene.json"), "--queries", str(d / "q.json")], "JSON list of query strings"),
    (lambda d: [str(d / "scene.json"), "--queries", str(d / "q.jsonl")], "string 'query'"),
    (lambda d: [str(d / "scene.json"), "-q", "x", "--reasoner", str(d / "nope.gguf")], "not found"),
    (lambda d: [str(d / "scene.json"), "-q", "x", "--adapter", str(d)], "not a PEFT adapter"),
    (lambda d: [str(d / "scene.json"), "-q", "x", "--backend", "tpu"], "backend must be one of"),
    (lambda d: [str(d / "scene.json"), "-q", "x", "--max-tool-rounds", "-1"], "max_tool_rounds"),
])
def test_bad_input_is_a_clear_error(tmp_path: Path, capsys, make_args, message: str) -> None:
    image_twin().save(tmp_path / "scene.json")
    bad = image_twin().to_dict()
    bad["frames"][0]["objects"][0]["box"] = [1, 2, 3]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    (tmp_path / "empty.txt").write_text("# nothing\n")
    (tmp_path / "q.json").write_text('{"query": "x"}')
    (tmp_path / "q.jsonl").write_text('{"text": "x"}\n')
    assert segment(*make_args(tmp_path)) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unreachable_reasoner_fails_the_command_after_writing_results(tmp_path: Path, capsys) -> None:
    image_twin().save(tmp_path / "scene.json")
    code = segment(str(tmp_path / "scene.json"), "-q", "x", "-o", str(tmp_path / "out"),
                   "--reasoner", "openai:m@http://127.0.0.1:9/v1")
    assert code == 1
    assert "reasoner failed on every query" in capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "result.json").read_text())[0]["answer"]["object_ids"] == []


def test_perception_errors_show_as_they_are(tmp_path: Path, capsys, monkeypatch) -> None:
    from fastreasonseg.errors import FrsError

    def build_twin(path, config=None, **kwargs):
        raise FrsError("OWLv2 weights not found; download them with ...")

    module = types.ModuleType("fastreasonseg.perception")
    module.build_twin = build_twin
    monkeypatch.setitem(sys.modules, "fastreasonseg.perception", module)
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    assert segment(str(tmp_path / "photo.png"), "-q", "x") == 1
    assert "OWLv2 weights not found" in capsys.readouterr().err


def test_image_input_goes_through_perception(tmp_path: Path, monkeypatch, reasoner: Reasoner) -> None:
    seen = {}

    def build_twin(path, config=None, queries=(), **kwargs):
        seen["path"], seen["queries"] = Path(path), list(queries)
        return image_twin(path=str(path))

    module = types.ModuleType("fastreasonseg.perception")
    module.build_twin = build_twin
    monkeypatch.setitem(sys.modules, "fastreasonseg.perception", module)
    Image.fromarray(np.zeros((40, 60, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    assert segment(str(tmp_path / "photo.png"), "-q", "the cup ids=3", "-o", str(tmp_path / "out"),
                   "--reasoner", reasoner.spec, "--no-overlay") == 0
    assert seen == {"path": tmp_path / "photo.png", "queries": ["the cup ids=3"]}
    assert json.loads((tmp_path / "out" / "result.json").read_text())[0]["answer"]["object_ids"] == [3]
    assert not list((tmp_path / "out").glob("overlay*"))


@pytest.mark.slow
def test_embedded_default_runs_offline(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("llama_cpp")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    twin = image_twin()
    twin.save(tmp_path / "scene.json")
    assert segment(str(tmp_path / "scene.json"), "-q", "the cup nearest to the camera", "-o", str(tmp_path / "out"),
                   "--max-new-tokens", "96") == 0
    [result] = json.loads((tmp_path / "out" / "result.json").read_text())
    [details] = json.loads((tmp_path / "out" / "rollout.json").read_text())
    assert details["reasoner"].startswith("llama.cpp:SmolLM2")
    assert set(result["answer"]["object_ids"]) <= {3, 8, 9}
    assert result["reasoning"].startswith("<reason>")
    assert (tmp_path / "out" / "overlay.png").is_file()
