"""frs teacher: the IoU filter, rejection reasons, crash-safe JSONL and resumption."""

from __future__ import annotations

import json

import pytest

from fastreasonseg.cli.main import main
from fastreasonseg.data.items import as_item
from fastreasonseg.distill.config import TeacherConfig
from fastreasonseg.distill.jsonl import JsonlAppender, read_jsonl, repair_tail
from fastreasonseg.distill.teacher import ChainOutput, LLMTeacher, ProgrammaticTeacher, decide, run_teacher
from fastreasonseg.distill.testing import tiny_items
from fastreasonseg.reasoning.backends.base import Generation, ReasonerBackend
from fastreasonseg.reasoning.protocol import Failure

CUP = tiny_items()[0]
TAMPERED = CUP["teacher"].replace("[[3,0.2],[4,0.7]]", "[[4,0.7],[3,0.2]]")


@pytest.mark.parametrize(("chain", "kept", "reason"), [
    (CUP["teacher"], True, "kept"),
    ("<reason>The near cup is 3.</reason>\n<answer>[3]</answer>", True, "kept"),
    ("<reason>r</reason>\n<answer>[3, 4]</answer>", False, "low_iou"),       # IoU 0.54: fine for RL, not > 0.7
    ("<reason>r</reason>\n<answer>[4]</answer>", False, "low_iou"),
    ("<answer>[3]</answer>", False, "format:missing_reason"),
    ("<reason>r</reason>\n<answer>[3]</answer>\nbye", False, "format:trailing_text"),
    (TAMPERED, False, "content:results_mismatch"),                          # recorded results must match the tools
    ('<reason>r</reason>\n<plan>[{"tool": "depth_order", "args": {"ids": [3, 42]}}]</plan>\n'
     '<results>[]</results>\n<answer>[3]</answer>', False, "content:tool_error"),
    ("<reason>r</reason>\n<answer>[3, 3]</answer>", False, "content:duplicate_ids"),
    ("<reason>r</reason>\n<answer>[]</answer>", False, "content:empty_answer"),
    ("<reason>r</reason>\n<answer>[9]</answer>", False, "content:unknown_ids"),
])
def test_decide_filter(chain, kept, reason):
    decision = decide(ChainOutput(chain), as_item(CUP), iou_threshold=0.7)
    assert (decision.kept, decision.reason) == (kept, reason)


@pytest.mark.parametrize(("threshold", "kept"), [(0.5, True), (0.535, True), (0.536, False), (0.7, False)])
def test_iou_threshold_is_strict(threshold, kept):
    # [3, 4] has IoU 225 / 420 = 0.5357 with the near cup.
    decision = decide(ChainOutput("<reason>r</reason>\n<answer>[3, 4]</answer>"), as_item(CUP),
                      iou_threshold=threshold)
    assert decision.kept is kept
    assert decision.iou == pytest.approx(225 / 420)


def test_non_strict_keeps_content_failures_but_not_format_or_runtime():
    view = as_item(CUP)
    assert decide(ChainOutput("<reason>r</reason>\n<answer>[3, 3]</answer>"), view, iou_threshold=0.7,
                  strict=False).kept
    runtime = ChainOutput(CUP["teacher"], runtime_failures=[Failure("backend_error", "down")])
    assert decide(runtime, view, iou_threshold=0.7, strict=False).reason == "runtime:backend_error"


# --------------------------------------------------------------------------- JSONL


def test_repair_tail_drops_only_a_torn_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": 3, "b"')
    assert repair_tail(path) == len(b'{"a": 3, "b"')
    assert [r["a"] for r in read_jsonl(path)] == [1, 2]
    assert repair_tail(path) == 0
    whole_torn = tmp_path / "y.jsonl"
    whole_torn.write_bytes(b'{"a": ')
    repair_tail(whole_torn)
    assert whole_torn.read_bytes() == b""


def test_read_jsonl_rejects_corrupt_middle_lines(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(ValueError, match=":2: not valid JSON"):
        list(read_jsonl(path))


def test_appender_appends_across_opens(tmp_path):
    path = tmp_path / "x.jsonl"
    with JsonlAppender(path) as out:
        out.write({"i": 1})
    path.write_bytes(path.read_bytes() + b'{"i": 2')  # a killed writer's half line
    with JsonlAppender(path) as out:
        assert out.dropped_bytes == len(b'{"i": 2')
        out.write({"i": 3})
    assert [r["i"] for r in read_jsonl(path)] == [1, 3]


# --------------------------------------------------------------------------- runs


def _items_file(tmp_path, count=6):
    items = []
    for index in range(count):
        base = tiny_items()[index % 2]
        items.append({**base, "id": f"{base['id']}-{index}"})
    items[-1] = {**items[-1], "teacher": items[-1]["teacher"].replace("[1]</answer>", "[2]</answer>")}  # a wrong chain
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    return path


class Interrupt(Exception):
    pass


class DyingTeacher(ProgrammaticTeacher):
    """Dies (like a killed process) while producing the chain of item number ``die_at``."""

    def __init__(self, die_at):
        self.calls = 0
        self.die_at = die_at

    def chains(self, view, samples):
        self.calls += 1
        if self.calls == self.die_at:
            raise Interrupt
        return super().chains(view, samples)


def test_programmatic_run_stats_and_resumption(tmp_path):
    items = _items_file(tmp_path)
    config = TeacherConfig(items=str(items), out=str(tmp_path / "out"))
    with pytest.raises(Interrupt):
        run_teacher(config, teacher=DyingTeacher(die_at=4), progress=False)
    chains = tmp_path / "out" / "chains.jsonl"
    assert len(list(read_jsonl(chains))) == 3  # everything decided before the kill is on disk
    chains.write_bytes(chains.read_bytes() + b'{"item_id": "knife-3", "sam')  # torn write of the 4th record
    teacher = DyingTeacher(die_at=0)
    stats = run_teacher(config, teacher=teacher, progress=False)
    records = list(read_jsonl(chains))
    assert [r["item_id"] for r in records] == ["cup-0", "knife-1", "cup-2", "knife-3", "cup-4", "knife-5"]
    assert teacher.calls == 3  # only the undecided items were run again
    assert stats["chains"] == 6 and stats["kept"] == 5 and stats["reasons"] == {"kept": 5, "low_iou": 1}
    assert stats["this_run"] == {"kept": 2, "rejected": 1, "skipped_done": 3}
    assert stats["by_category"]["semantic"] == {"kept": 2, "rejected": 1}
    saved = json.loads((tmp_path / "out" / "teacher_stats.json").read_text())
    assert saved["kept"] == 5
    assert (tmp_path / "out" / "resolved_config.yaml").is_file()
    # A third run has nothing left to do.
    again = run_teacher(config, teacher=DyingTeacher(die_at=0), progress=False)
    assert again["this_run"] == {"skipped_done": 6} and again["chains"] == 6


class CannedBackend(ReasonerBackend):
    """Answers rollout turns from a script keyed by call order (stands in for an LLM endpoint)."""

    def __init__(self, turns):
        self.turns = list(turns)
        self.seeds = []

    def complete(self, request):
        self.seeds.append(request.seed)
        return self.turns.pop(0)


def test_llm_teacher_samples_through_the_runtime(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps(CUP) + "\n")
    plan = '<reason>Compare the cups.</reason>\n<plan>[{"tool": "depth_order", "args": {"ids": [3, 4]}}]</plan>'
    backend = CannedBackend([
        Generation(plan, "stop"), Generation("<answer>[3]</answer>", "stop"),   # sample 0: tool round, right
        Generation("<reason>Far cup.</reason>\n<answer>[4]</answer>", "stop"),  # sample 1: wrong
        Generation("", "error", error="endpoint down"),                         # sample 2: backend failure
    ])
    config = TeacherConfig(items=str(items), out=str(tmp_path / "out"), kind="openai", samples=3, temperature=0.7)
    stats = run_teacher(config, teacher=LLMTeacher(backend, config), progress=False)
    records = list(read_jsonl(tmp_path / "out" / "chains.jsonl"))
    assert [(r["sample"], r["reason"]) for r in records] == [(0, "kept"), (1, "low_iou"),
                                                            (2, "runtime:backend_error")]
    assert '<results>[{"tool":"depth_order","ok":true' in records[0]["chain"]  # inserted by the runtime
    assert stats["kept"] == 1
    assert backend.seeds[0] != backend.seeds[2]  # each sample draws with its own seed


def test_frs_teacher_cli(tmp_path, capsys):
    items = _items_file(tmp_path, count=2)
    out = tmp_path / "cli"
    assert main(["teacher", "--items", str(items), "--out", str(out), "-q"]) == 0
    assert '"kept": 1' in capsys.readouterr().out
    assert main(["teacher", "--items", str(tmp_path / "missing.jsonl"), "--out", str(out), "-q"]) == 1
    assert "does not exist" in " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert main(["teacher", "--items", str(items), "--set", "samples=2"]) == 1
    assert "deterministic" in capsys.readouterr().err
