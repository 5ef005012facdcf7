"""Query programs: validation and the interpreter on hand-built twins with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from fastreasonseg.data.programs import Program, ProgramError, execute
from fastreasonseg.twin import DigitalTwin, Frame, Source, make_object
from fastreasonseg.twin.tools import run_tool

H, W = 100, 200


def block(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def obj(object_id: int, label: str, x0: int, y0: int, x1: int, y1: int, depth: float):
    return make_object(object_id, label, 0.9, [x0, y0, x1, y1], mask=block(x0, y0, x1, y1), depth=(depth, 0.01))


@pytest.fixture
def kitchen() -> DigitalTwin:
    """cup 1 (left, near, small), cup 2 (right, far, big), laptop 3 (middle), knife 4 (near the left cup)."""
    objects = (obj(1, "cup", 10, 60, 20, 75, 0.1), obj(2, "cup", 160, 20, 190, 50, 0.8),
               obj(3, "laptop", 80, 40, 120, 70, 0.5), obj(4, "knife", 24, 62, 30, 76, 0.15))
    return DigitalTwin(source=Source(kind="image", width=W, height=H), frames=(Frame(0, 0.0, objects),))


@pytest.fixture
def street() -> DigitalTwin:
    """Person 1 walks right and overtakes person 2 (slow, also right); dog 3 stands still; car 4 enters at frame 2."""
    frames = []
    for t in range(4):
        objects = [obj(1, "person", 10 + 40 * t, 40, 20 + 40 * t, 80, 0.3),
                   obj(2, "person", 60 + 5 * t, 40, 70 + 5 * t, 80, 0.35),
                   obj(3, "dog", 150, 70, 170, 85, 0.2)]
        if t >= 2:
            objects.append(obj(4, "car", 100, 50, 140, 70, 0.6))
        frames.append(Frame(t, t * 0.5, tuple(objects)))
    return DigitalTwin(source=Source(kind="video", width=W, height=H, num_frames=4, fps=2.0), frames=tuple(frames))


def program(*steps: dict, answer: str = "t") -> dict:
    return {"steps": list(steps), "answer": answer}


LABELS_CUP = {"id": "c", "op": "labels", "labels": ["cup"]}
LABELS_LAPTOP = {"id": "r", "op": "labels", "labels": ["laptop"]}


@pytest.mark.parametrize(("steps", "expected"), [
    ([LABELS_CUP, {"id": "t", "op": "extreme", "in": "c", "by": "depth", "order": "min"}], [1]),
    ([LABELS_CUP, {"id": "t", "op": "extreme", "in": "c", "by": "area", "order": "max"}], [2]),
    ([{"id": "t", "op": "extreme", "by": "x", "order": "max"}], [2]),
    ([LABELS_CUP, LABELS_LAPTOP, {"id": "t", "op": "relation", "in": "c", "ref": "r", "rel": "left_of"}], [1]),
    ([LABELS_CUP, LABELS_LAPTOP, {"id": "t", "op": "relation", "in": "c", "ref": "r", "rel": "behind"}], [2]),
    ([{"id": "k", "op": "labels", "labels": ["knife"]}, LABELS_CUP,
      {"id": "t", "op": "nearest", "in": "c", "ref": "k"}], [1]),
    ([{"id": "a", "op": "all"}, LABELS_CUP, {"id": "t", "op": "difference", "a": "a", "b": "c"}], [3, 4]),
    ([LABELS_CUP, LABELS_LAPTOP, {"id": "t", "op": "union", "a": "c", "b": "r"}], [1, 2, 3]),
    ([{"id": "a", "op": "all"}, LABELS_CUP, {"id": "t", "op": "intersect", "a": "a", "b": "c"}], [1, 2]),
    ([LABELS_CUP, {"id": "t", "op": "attribute", "in": "c", "key": "region", "value": "right"}], [2]),
])
def test_image_programs(kitchen: DigitalTwin, steps: list, expected: list) -> None:
    execution = execute(program(*steps), kitchen)
    assert execution.ok and execution.answer == expected


@pytest.mark.parametrize(("steps", "expected"), [
    ([{"id": "p", "op": "labels", "labels": ["person"]}, {"id": "t", "op": "moving", "in": "p", "moves": True}], [1, 2]),
    ([{"id": "a", "op": "all"}, {"id": "t", "op": "moving", "in": "a", "moves": False}], [3, 4]),
    ([{"id": "p", "op": "labels", "labels": ["person"]}, {"id": "t", "op": "fastest", "in": "p", "order": "max"}], [1]),
    ([{"id": "a", "op": "all"}, {"id": "t", "op": "enters", "in": "a"}], [4]),
    ([{"id": "a", "op": "all"}, {"id": "t", "op": "event", "in": "a", "event": "first_seen", "which": "last"}], [4]),
    ([{"id": "p", "op": "labels", "labels": ["person"]}, {"id": "t", "op": "overtakes", "in": "p", "axis": "x"}], [1]),
    ([{"id": "p", "op": "labels", "labels": ["person"]}, {"id": "o", "op": "overtakes", "in": "p", "axis": "x"},
      {"id": "t", "op": "difference", "a": "p", "b": "o"}], [2]),
])
def test_video_programs(street: DigitalTwin, steps: list, expected: list) -> None:
    execution = execute(program(*steps), street)
    assert execution.ok and execution.answer == expected


def test_trace_records_tool_calls_that_replay(kitchen: DigitalTwin) -> None:
    execution = execute(program(LABELS_CUP, LABELS_LAPTOP,
                                {"id": "s", "op": "relation", "in": "c", "ref": "r", "rel": "left_of"},
                                {"id": "t", "op": "extreme", "in": "s", "by": "area", "order": "max"}), kitchen)
    rounds = execution.rounds()
    # reading steps are not rounds; the relation calls come first, the extreme over their survivors second
    assert [[call["tool"] for call, _ in rnd] for rnd in rounds] == [["relation", "relation"], ["extreme"]]
    for rnd in rounds:
        for call, result in rnd:
            assert run_tool(kitchen, call) == result


def test_video_ops_refuse_images(kitchen: DigitalTwin) -> None:
    execution = execute(program({"id": "a", "op": "all"}, {"id": "t", "op": "moving", "in": "a", "moves": True}),
                        kitchen)
    assert not execution.ok and "needs a video" in execution.error


def test_close_calls_are_not_robust() -> None:
    objects = (obj(1, "cup", 10, 10, 30, 30, 0.40), obj(2, "cup", 100, 10, 120, 30, 0.42))
    twin = DigitalTwin(source=Source(kind="image", width=W, height=H), frames=(Frame(0, 0.0, objects),))
    execution = execute(program(LABELS_CUP, {"id": "t", "op": "extreme", "in": "c", "by": "depth", "order": "min"}),
                        twin)
    assert execution.ok and execution.answer == [1] and not execution.robust


@pytest.mark.parametrize(("data", "message"), [
    ({"steps": []}, "non-empty"),
    ({"steps": [{"id": "a", "op": "teleport"}], "answer": "a"}, "unknown op 'teleport'"),
    ({"steps": [{"id": "a", "op": "extreme", "by": "depth"}], "answer": "a"}, "missing argument 'order'"),
    ({"steps": [{"id": "a", "op": "extreme", "by": "smell", "order": "max"}], "answer": "a"}, "expected one of"),
    ({"steps": [{"id": "a", "op": "extreme", "in": "zzz", "by": "depth", "order": "max"}], "answer": "a"},
     "not an earlier step id"),
    ({"steps": [{"id": "a", "op": "all"}], "answer": "b"}, "is not a step id"),
    ({"steps": [{"id": "a", "op": "all", "code": "import os"}], "answer": "a"}, "unknown arguments ['code']"),
    ({"steps": [{"id": "a", "op": "all"}, {"id": "a", "op": "all"}], "answer": "a"}, "used twice"),
])
def test_program_validation(data: dict, message: str) -> None:
    with pytest.raises(ProgramError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        Program.from_dict(data)


def test_program_round_trip() -> None:
    data = program(LABELS_CUP, {"id": "t", "op": "depth_rank", "in": "c", "take": "nearest", "n": 1})
    assert Program.from_dict(data).to_dict() == data
