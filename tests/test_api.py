"""The Python API (``fastreasonseg.ReasoningSegmenter``): inputs, ask/ask_many, stream, results, supervision, README.

Real code paths throughout: perception is the tiny random-initialised OWLv2 / SAM 2 / Depth
Anything saved and loaded like real checkpoints (``perception/testing.py``); the reasoners are
the tiny random Llama through the transformers backend (real tokenizer, real prefix cache), or
small scripted backends that answer by reading the prompt, so answers are checkable. For the
stream test, random SAM 2 weights cannot track anything: as in ``test_perception_video.py``
(whose stand-ins it reuses), the real streaming SAM 2 model runs with its per-frame output
masks replaced by the synthetic video's truth, and OWLv2 is replaced at its raw outputs.
"""

from __future__ import annotations

import gc
import json
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastreasonseg import ReasoningSegmenter
from fastreasonseg.errors import FrsError
from fastreasonseg.reasoning.backends.base import Generation, GenerationRequest, ReasonerBackend
from fastreasonseg.serve.testing import EchoBackend, sample_twin
from fastreasonseg.twin import DigitalTwin, Frame, decode_mask

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py: tiny models, one thread


class NamedBackend(ReasonerBackend):
    """Answers with the ids after 'ids=' in the request, else with the twin rows whose label the request names."""

    name = "named"

    def __init__(self) -> None:
        self.calls = 0

    def complete(self, request: GenerationRequest) -> Generation:
        self.calls += 1
        content = request.messages[-1]["content"]
        scene, _, query = content.rpartition("Request: ")
        if "ids=" in query:
            ids = [int(i) for i in re.findall(r"\d+", query.split("ids=")[1])]
        else:
            ids = [int(i) for i, label in re.findall(r"(?m)^(\d+) ([a-z]+)\b", scene) if label in query]
        text = f"<reason>the request names {ids}</reason>\n<answer>{json.dumps(ids)}</answer>"
        return Generation(text, "stop", prompt_tokens=len(content) // 4, new_tokens=len(text) // 4)


def picture(height: int = 64, width: int = 96) -> np.ndarray:
    image = np.full((height, width, 3), 128, np.uint8)
    image[8:30, 10:40] = (220, 30, 30)
    image[36:60, 50:90] = (30, 30, 220)
    return image


@pytest.fixture(scope="module")
def tiny_perception(tmp_path_factory):
    from fastreasonseg.perception.testing import save_tiny_models

    # Threshold 0: random OWLv2 scores are low, and these tests need objects in the twin.
    return save_tiny_models(tmp_path_factory.mktemp("tiny_api_models"), score_threshold=0.0, max_objects=4,
                            use_default_vocabulary=False, extra_labels=("cup", "knife"), min_mask_area=1)


# --------------------------------------------------------------------------- inputs


def test_array_pil_path_and_twin_inputs_give_the_same_answer(tmp_path: Path, tiny_perception) -> None:
    seg = ReasoningSegmenter.from_pretrained(EchoBackend(), perception=tiny_perception)
    image = picture()
    query = "the nearest object"

    scene = seg.set_scene(image)
    from_array = seg.ask(query)
    assert scene.twin.track_ids and scene.perception_s > 0  # perception ran and found objects
    assert from_array.timing.perception_s == scene.perception_s  # charged to the scene's first query ...
    assert seg.ask(query).timing.perception_s == 0.0  # ... and only to it
    from_pil = seg.ask(query, scene=Image.fromarray(image))
    Image.fromarray(image).save(tmp_path / "photo.png")
    from_path = seg.ask(query, scene=tmp_path / "photo.png")
    assert seg.scene.source == tmp_path / "photo.png" and seg.scene.twin.source.path == str(tmp_path / "photo.png")
    seg.scene.twin.save(tmp_path / "scene.json")
    from_json = seg.ask(query, scene=str(tmp_path / "scene.json"))
    from_twin = seg.ask(query, scene=DigitalTwin.load(tmp_path / "scene.json"))

    answers = [from_array, from_pil, from_path, from_json, from_twin]
    assert from_array.object_ids and from_array.format_ok  # a real answer: the nearest by depth_order
    for other in answers[1:]:
        assert other.object_ids == from_array.object_ids
        assert other.reasoning == from_array.reasoning
        assert np.array_equal(other.masks, from_array.masks)
        assert np.array_equal(other.boxes, from_array.boxes, equal_nan=True)
    assert from_array.masks.shape == (1, 64, 96) and from_array.masks.any()


@pytest.mark.parametrize(("scene", "words"), [
    (np.zeros((8, 8, 3), np.float32), "must be uint8"),
    (np.zeros((8, 8), np.uint8), "shape (H, W, 3)"),
    (np.zeros((8, 8, 4), np.uint8), "drop the alpha channel"),
    (42, "cannot make a scene from int"),
    ([np.zeros((8, 8, 3), np.uint8), np.zeros((6, 8, 3), np.uint8)], "every frame must have the same size"),
    (["not a frame"], "frame 0 must be a numpy array or a PIL image"),
    ("missing.json", "not found"),
])
def test_bad_scenes_are_clear_errors_before_any_model_runs(tmp_path: Path, monkeypatch, scene, words) -> None:
    from fastreasonseg.api import Perception

    class NoModels(Perception):
        """Checks every frame as the video builder reads them, and loads and builds nothing."""

        def builder(self, kind):
            raise AssertionError(f"perception ({kind}) was reached with a bad input")

        def stream(self, frames, queries=()):
            list(frames)
            return iter(())

    monkeypatch.chdir(tmp_path)
    backend = NamedBackend()
    seg = ReasoningSegmenter.from_pretrained(backend, perception=NoModels())
    with pytest.raises(FrsError, match=re.escape(words)):
        seg.set_scene(scene)
    assert backend.calls == 0


@pytest.mark.parametrize(("queries", "words"), [
    ([""], "non-empty query"), (["the cup", ""], "query 2 is empty"), (["x" * 501], "limit is 500"),
    (["a\x00b"], "control characters"), (["q"] * 17, "the limit is 16"), ("the cup", "use ask() for one"),
])
def test_bad_queries_get_the_cli_messages(queries, words) -> None:
    backend = NamedBackend()
    seg = ReasoningSegmenter.from_pretrained(backend)
    seg.set_scene(sample_twin())
    with pytest.raises(FrsError, match=re.escape(words)):
        seg.ask_many(queries)
    assert backend.calls == 0


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"reasoner": "nope.gguf"}, "not found"),
    ({"reasoner": "base", "adapter": "."}, "not a PEFT adapter"),
    ({"backend": "tpu"}, "backend must be one of"),
    ({"max_tool_rounds": -1}, "max_tool_rounds"),
    ({"max_new_tokenz": 3}, "unknown rollout settings"),
    ({"perception": "missing.yaml"}, "cannot read perception config"),
])
def test_loading_errors_are_the_cli_errors(kwargs, words) -> None:
    with pytest.raises(FrsError, match=re.escape(words)):
        ReasoningSegmenter.from_pretrained(**kwargs)


def test_asking_without_a_scene_says_what_to_do() -> None:
    with pytest.raises(FrsError, match="call set_scene"):
        ReasoningSegmenter.from_pretrained(NamedBackend()).ask("the cup")


# --------------------------------------------------------------------------- ask_many


def test_ask_many_equals_separate_asks_and_encodes_the_scene_once(tiny_chat_model) -> None:
    seg = ReasoningSegmenter.from_pretrained(str(tiny_chat_model), backend="hf", dtype="float32", max_new_tokens=6,
                                             few_shot=False)
    assert seg.engine.backend.supports_batching  # ask_many decodes the queries together
    queries = ["the nearer cup", "what would I cut bread with?", "the table under everything else"]
    seg.set_scene(sample_twin())
    together = seg.ask_many(queries)
    separate = [seg.ask(query) for query in queries]

    def contract(result) -> dict:
        return {key: value for key, value in result.to_json().items() if key != "timing"}

    assert [contract(r) for r in together] == [contract(r) for r in separate]
    prompt = together[0].timing.prompt_tokens
    scene_text = seg.engine.twin_text(sample_twin())
    scene_tokens = seg.engine.backend.count_tokens(scene_text)
    assert scene_tokens > 50  # the twin is a large part of every prompt
    # Counted by the backend: tokens run through the model = prompt - served from the prefix cache.
    assert together[0].timing.encoded_tokens == prompt  # a fresh model encodes the first prompt whole
    assert all(r.timing.encoded_tokens < prompt - scene_tokens for r in together[1:])  # the others: the query only
    assert sum(r.timing.encoded_tokens for r in together) < prompt + scene_tokens  # the scene once, not three times
    assert all(r.timing.encoded_tokens < prompt - scene_tokens for r in separate)  # later asks reuse it too


# --------------------------------------------------------------------------- results


def test_results_are_typed_arrays_that_match_result_json() -> None:
    seg = ReasoningSegmenter.from_pretrained(NamedBackend())
    twin = sample_twin()
    result = seg.ask("the cup and the knife ids=3,5", scene=twin)
    assert result.object_ids == [3, 5] and result.labels == ["cup", "knife"]
    entry = result.to_json()
    assert set(entry) == {"query", "answer", "reasoning", "frames", "timing"}
    assert entry["answer"] == {"object_ids": [3, 5]} and entry["reasoning"] == result.reasoning
    assert result.masks.dtype == bool and result.masks.shape == (1, 240, 320)
    assert np.array_equal(result.masks[0], decode_mask(entry["frames"][0]["mask"]))
    assert np.array_equal(result.masks[0], twin.union_mask([3, 5], 0))
    assert result.boxes.shape == (1, 2, 4)
    assert result.boxes[0].tolist() == [list(twin.object(3).box), list(twin.object(5).box)]
    assert [s.tag for s in result.steps] == ["reason", "answer"] and result.steps[1].data == [3, 5]
    assert result.rle() == entry["frames"]


def test_to_json_is_what_frs_segment_writes(tmp_path: Path, monkeypatch) -> None:
    import fastreasonseg.reasoning.factory as factory
    from fastreasonseg.cli.main import main

    monkeypatch.setattr(factory, "load_reasoner", lambda config: NamedBackend())
    sample_twin().save(tmp_path / "scene.json")
    queries = ["the cup", "the knife ids=5"]
    args = ["segment", str(tmp_path / "scene.json"), "-o", str(tmp_path / "out"), "--no-overlay"]
    assert main([*args, "-q", queries[0], "-q", queries[1]]) == 0
    written = json.loads((tmp_path / "out" / "result.json").read_text())
    answers = ReasoningSegmenter.from_pretrained("default").ask_many(queries, scene=tmp_path / "scene.json")
    for entry, answer in zip(written, answers, strict=True):
        assert set(entry["timing"]) == set(answer.to_json()["timing"]) == {"perception_s", "reasoning_s"}
        assert {k: v for k, v in entry.items() if k != "timing"} == \
            {k: v for k, v in answer.to_json().items() if k != "timing"}
    assert written[0]["answer"]["object_ids"] == [3, 8]


def test_supervision_round_trips_boxes_and_masks() -> None:
    pytest.importorskip("supervision")
    from fastreasonseg import twin_from_detections

    twin = sample_twin()
    seg = ReasoningSegmenter.from_pretrained(NamedBackend())
    result = seg.ask("the cup and the knife ids=3,5", scene=twin)  # cup 3 has a mask, knife 5 only a box
    detections = result.to_detections()
    assert detections.xyxy.tolist() == result.boxes[0].tolist()
    assert detections.tracker_id.tolist() == [3, 5]
    assert detections.data["class_name"].tolist() == ["cup", "knife"]
    assert detections.mask.shape == (2, 240, 320)
    assert np.array_equal(detections.mask.any(axis=0), result.masks[0])

    back = twin_from_detections(detections)
    for object_id in (3, 5):
        assert back.object(object_id).box == twin.object(object_id).box
        assert np.array_equal(back.object_mask(back.object(object_id)), twin.object_mask(twin.object(object_id)))
    again = seg.ask("the same ids=3,5", scene=back)
    assert np.array_equal(again.masks, result.masks) and np.array_equal(again.boxes, result.boxes)


# --------------------------------------------------------------------------- stream


def moving_squares(t: int) -> dict[str, tuple[int, int, int, int]]:
    """Truth boxes at frame t: a red square ('cup') bouncing left and right, a blue one ('knife') drifting."""
    x = 4 + abs((3 * t) % 120 - 60)
    y = 30 + abs(t % 40 - 20) // 4
    return {"red": (x, 6, x + 14, 20), "blue": (76 - abs(t % 60 - 30), y, 88 - abs(t % 60 - 30), y + 12)}


def render_squares(t: int) -> np.ndarray:
    from test_perception_video import BLUE, HEIGHT, RED, WIDTH

    image = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    for color, (x1, y1, x2, y2) in moving_squares(t).items():
        image[y1:y2, x1:x2] = RED if color == "red" else BLUE
    return image


def oracle_video_segmenter(tiny_perception) -> tuple[ReasoningSegmenter, NamedBackend, object]:
    """The real streaming SAM 2 tracker (outputs replaced by :func:`moving_squares`), OWLv2 at its raw outputs."""
    from fastreasonseg.api import Perception
    from fastreasonseg.perception import VideoTwinBuilder
    from fastreasonseg.perception.tracker import Sam2VideoTracker
    from test_perception_video import ColorDetector, OracleSam2Video

    class Oracle(OracleSam2Video):
        scene_fn = staticmethod(moving_squares)

    config = tiny_perception.with_overrides(score_threshold=0.3, keyframe_interval=4, max_missing_frames=1,
                                            min_mask_area=4)
    tracker = Sam2VideoTracker(Oracle.from_pretrained(config.segmenter_model).eval())
    builder = VideoTwinBuilder(config, detector=ColorDetector(score_threshold=0.3), tracker=tracker, depth=None)
    backend = NamedBackend()
    seg = ReasoningSegmenter.from_pretrained(backend, perception=Perception(config, video_builder=builder))
    return seg, backend, tracker


def test_video_frames_in_memory_are_a_video_scene(tiny_perception) -> None:
    seg, _, _ = oracle_video_segmenter(tiny_perception)
    scene = seg.set_scene(np.stack([render_squares(t) for t in range(12)]), fps=10.0)  # (T, H, W, 3)
    twin = scene.twin
    assert twin.is_video and [f.index for f in twin.frames] == list(range(12)) and twin.source.fps == 10.0
    assert [f.time for f in twin.frames] == pytest.approx([t / 10 for t in range(12)])
    assert len(twin.track_ids) == 2  # two squares, one id each over all frames
    result = seg.ask("the knife")
    assert result.masks.shape == (12, 64, 96) and result.boxes.shape == (12, 1, 4)
    for t in range(12):
        assert result.boxes[t, 0].tolist() == pytest.approx(moving_squares(t)["blue"], abs=1.0)


def test_stream_keeps_ids_across_frames_and_memory_flat_over_100_frames(tiny_perception) -> None:
    from test_perception_video import HEIGHT, WIDTH

    truth, render = moving_squares, render_squares
    seg, backend, tracker = oracle_video_segmenter(tiny_perception)

    frames = (render(t) for t in range(100))  # a generator: the stream never holds the video
    knife_ids, traced, stored, live_frames = set(), {}, {}, {}
    gc.collect()
    before = sum(type(o) is Frame for o in gc.get_objects())  # other tests' twins may still be alive (caches)
    for step in seg.stream(frames, "the knife", window=16, every=8, fps=10.0):
        t = step.index
        [knife] = step.object_ids
        knife_ids.add(knife)
        assert step.boxes[0].tolist() == pytest.approx(truth(t)["blue"], abs=1.0)
        assert step.mask.any() and step.mask.shape == (HEIGHT, WIDTH)
        assert step.asked == (t % 8 == 0) and len(step.answer.twin.frames) == min(t - t % 8 + 1, 16)
        if t == 30:
            tracemalloc.start()
        if t in (40, 70, 99):
            gc.collect()
            traced[t] = tracemalloc.get_traced_memory()[0]
            stored[t] = tracker.stored_frame_count()
            live_frames[t] = sum(type(o) is Frame for o in gc.get_objects()) - before
    tracemalloc.stop()
    assert len(knife_ids) == 1  # one id for the knife over all 100 frames and 13 rollouts
    assert backend.calls == 13
    assert stored[99] == stored[70] == stored[40]  # SAM 2 holds the same number of frames' state
    # Twin frames alive: the window plus the frames of the last rollout's twin, never the whole video.
    assert all(count <= 16 + 8 for count in live_frames.values()), live_frames
    # Once warm (transformers' own caches fill up to about frame 60), the heap stays flat: keeping each
    # frame's answer masks would add ~12 KB a frame, ~350 KB over these 29 frames.
    assert traced[99] - traced[70] < 32 * 1024, f"grew {traced[99] - traced[70]} bytes over 29 frames"


# --------------------------------------------------------------------------- package and README


def test_import_stays_light() -> None:
    code = ("import sys, fastreasonseg; light = not {'numpy', 'torch'} & set(sys.modules); "
            "from fastreasonseg import ReasoningSegmenter, demo_scene; "
            "print(light, 'torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False", "False"]


def readme_python() -> str:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return code


def test_readme_python_section_is_short_and_uses_the_api() -> None:
    code = readme_python()
    assert 6 <= len(code.strip().splitlines()) <= 12
    assert "from fastreasonseg import ReasoningSegmenter" in code and "ask_many" in code


@pytest.mark.slow
def test_readme_python_example_runs_offline_as_written(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", readme_python()], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "<reason>" in done.stdout and "->" in done.stdout
