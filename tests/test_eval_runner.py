"""``frs eval``: synthetic items and a DAVIS-style fixture through the real rollout engine, resumption, summary."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastreasonseg.cli.main import main
from fastreasonseg.data.items import as_item
from fastreasonseg.data.synth import SynthConfig, synthesize
from fastreasonseg.errors import FrsError
from fastreasonseg.eval.runner import EvalConfig, iter_samples, predicted_frames, run_eval, summarize
from fastreasonseg.metrics import MetricAccumulator
from fastreasonseg.reasoning.backends.base import Generation, GenerationRequest, ReasonerBackend
from fastreasonseg.reasoning.engine import RolloutEngine


class ScriptedBackend(ReasonerBackend):
    """Answers each query with a fixed completion (the subject here is evaluation, not generation)."""

    name = "scripted"

    def __init__(self, answers: dict[str, str], stop_after: int | None = None):
        self.answers = answers
        self.calls: list[str] = []
        self.stop_after = stop_after

    def complete(self, request: GenerationRequest) -> Generation:
        if self.stop_after is not None and len(self.calls) >= self.stop_after:
            raise KeyboardInterrupt  # a killed run
        query = next(q for q in self.answers if q in request.messages[-1]["content"])
        self.calls.append(query)
        return Generation(text=self.answers[query], stop_reason="stop", new_tokens=7)


def _answer(ids: list[int] | None) -> str:
    if ids is None:
        return "I am not sure."  # no tags: a parse failure
    return f"<reason>scripted</reason>\n<answer>{json.dumps(ids)}</answer>"


@pytest.fixture(scope="module")
def synth_items(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("synth")
    synthesize(SynthConfig(split="test", n=6, seed=5, video=True, num_frames=6, width=160, height=120), folder)
    return folder / "test.jsonl"


def _items(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _scripted(items: list[dict], **kwargs) -> ScriptedBackend:
    # Even items answered right, odd ones unparseable.
    return ScriptedBackend({it["query"]: _answer(it["answer_ids"] if i % 2 == 0 else None)
                            for i, it in enumerate(items)}, **kwargs)


def test_synthetic_eval_scores_groups_and_counts_parse_failures(synth_items, tmp_path):
    items = _items(synth_items)
    config = EvalConfig(benchmark="synthetic", items=str(synth_items), out=str(tmp_path / "run"))
    summary = run_eval(config, RolloutEngine(_scripted(items)))
    assert summary["count"] == 6 and summary["video"] is True
    assert summary["parse_failures"] == 3
    records = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == [it["id"] for it in items]
    for i, (record, sample) in enumerate(zip(records, iter_samples(config), strict=True)):
        # No perception noise: the right ids give the ground-truth masks exactly; no answer predicts
        # nothing, which scores 1 only in frames where the target is absent (LISA's empty-union rule).
        empty_share = np.mean([not gt.any() for gt in sample.gt_frames()])
        assert record["iou"] == pytest.approx(1.0 if i % 2 == 0 else empty_share)
        assert record["parse_failed"] == (i % 2 == 1)
    # The summary rebuilt from records equals MetricAccumulator run on the same masks.
    accumulator = MetricAccumulator()
    for sample, record in zip(iter_samples(config), records, strict=True):
        twin, gt = sample.make_twin(), sample.gt_frames()
        accumulator.update(predicted_frames(twin, record["answer_ids"], sample.frame_indices, gt[0].shape), gt,
                           keys=sample.keys)
    expected = accumulator.compute()
    for metric in ("J", "F", "J&F", "gIoU", "cIoU"):
        assert summary["overall"][metric] == pytest.approx(expected["overall"][metric])
        for group, values in summary["groups"].items():
            for value, leaf in values.items():
                assert leaf[metric] == pytest.approx(expected[group][value][metric])
    assert set(summary["groups"]) >= {"category", "level", "length"}
    markdown = (tmp_path / "run" / "summary.md").read_text()
    assert "| overall | all | 6 |" in markdown and "| category |" in markdown
    assert (tmp_path / "run" / "plots" / "iou_hist.png").stat().st_size > 0
    assert (tmp_path / "run" / "plots" / "by_category.png").is_file()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["items"] == str(synth_items)


def test_killed_run_resumes_where_it_stopped(synth_items, tmp_path):
    items = _items(synth_items)
    out = tmp_path / "run"
    config = EvalConfig(benchmark="synthetic", items=str(synth_items), out=str(out))
    with pytest.raises(KeyboardInterrupt):
        run_eval(config, RolloutEngine(_scripted(items, stop_after=2)))
    samples = out / "samples.jsonl"
    assert len(samples.read_text().splitlines()) == 2
    with open(samples, "a") as handle:
        handle.write('{"id": "torn-by-the-kil')  # a line cut mid-write
    backend = _scripted(items)
    resumed = run_eval(config, RolloutEngine(backend))
    assert backend.calls == [it["query"] for it in items[2:]]  # the first two were not asked again
    ids = [json.loads(line)["id"] for line in samples.read_text().splitlines()]
    assert ids == [it["id"] for it in items]
    fresh = run_eval(EvalConfig(benchmark="synthetic", items=str(synth_items), out=str(tmp_path / "fresh")),
                     RolloutEngine(_scripted(items)))
    assert resumed["overall"] == fresh["overall"] and resumed["groups"] == fresh["groups"]
    # A third run has nothing left to do and loads no model.
    assert run_eval(config, reasoner=None)["count"] == 6


def test_resuming_with_another_config_is_refused(synth_items, tmp_path):
    items = _items(synth_items)
    run_eval(EvalConfig(benchmark="synthetic", items=str(synth_items), out=str(tmp_path), limit=1),
             RolloutEngine(_scripted(items)))
    with pytest.raises(FrsError, match="reasoner"):
        run_eval(EvalConfig(benchmark="synthetic", items=str(synth_items), out=str(tmp_path), reasoner="other"),
                 RolloutEngine(_scripted(items)))



def test_disabled_tools_are_checked_and_an_older_config_without_them_resumes(synth_items, tmp_path):
    items = _items(synth_items)
    run_eval(EvalConfig(benchmark="synthetic", items=str(synth_items), out=str(tmp_path), limit=1),
             RolloutEngine(_scripted(items)))
    saved = tmp_path / "config.json"
    older = json.loads(saved.read_text())
    del older["disabled_tools"]  # written before the field existed
    saved.write_text(json.dumps(older))
    assert EvalConfig(benchmark="synthetic", items=str(synth_items), out=str(tmp_path), limit=1).differs_from(older) == []
    ablation = EvalConfig(benchmark="synthetic", items=str(synth_items), out=str(tmp_path), disabled_tools=["knowledge"])
    assert ablation.differs_from(older) == ["disabled_tools"]
    with pytest.raises(ValueError, match="not tools"):
        EvalConfig(benchmark="synthetic", items=str(synth_items), disabled_tools=["teleport"])
    with pytest.raises(ValueError, match="calls none"):
        EvalConfig(benchmark="synthetic", items=str(synth_items), reasoner="chance", disabled_tools=["knowledge"])


H, W = 8, 10


def _write_davis(root: Path) -> None:
    """Two frames; object 1 moves right, object 2 still; 255 void."""
    for f in range(2):
        (root / "JPEGImages" / "cars").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / "cars").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (W, H)).save(root / "JPEGImages" / "cars" / f"{f:05d}.jpg")
        ids = np.zeros((H, W), dtype=np.uint8)
        ids[0:2, f:f + 3] = 1
        ids[4:7, 5:8] = 2
        ids[7, 0] = 255
        image = Image.fromarray(ids, mode="P")
        image.putpalette([0, 0, 0, 200, 0, 0, 0, 200, 0] + [0, 0, 0] * 252 + [255, 255, 255])
        image.save(root / "Annotations" / "cars" / f"{f:05d}.png")
    (root / "queries.json").write_text(json.dumps([
        {"id": "q1", "video": "cars", "query": "the car that moves", "object_ids": [1], "category": "temporal",
         "level": 1},
        {"id": "q2", "video": "cars", "query": "the parked car", "object_ids": [2], "category": "spatial", "level": 2},
    ]))


def test_video_benchmark_with_annotation_twins(tmp_path):
    _write_davis(tmp_path / "bench")
    # q1 answered right; q2 answered with the other object (IoU 0).
    backend = ScriptedBackend({"the car that moves": _answer([1]), "the parked car": _answer([1])})
    summary = run_eval(EvalConfig(benchmark="jitbench", root=str(tmp_path / "bench"), out=str(tmp_path / "out")),
                       RolloutEngine(backend))
    assert summary["headline"] == ["J", "F", "J&F"]
    assert summary["groups"]["category"]["temporal"]["J&F"] == pytest.approx(1.0)
    assert summary["groups"]["category"]["spatial"]["J"] == pytest.approx(0.0)
    assert summary["overall"]["J"] == pytest.approx(0.5)
    # cIoU: q1 intersects 6+6 pixels of a 12-pixel union; q2 0 of 9+9+6+6.
    assert summary["overall"]["cIoU"] == pytest.approx(12 / (12 + 30))
    assert summary["parse_failures"] == 0


def test_programmatic_teacher_row(synth_items, tmp_path):
    # The teacher replays each item's chain; its answers are what the synthetic world says they are.
    summary = run_eval(EvalConfig(benchmark="synthetic", items=str(synth_items), out=str(tmp_path / "t"),
                                  reasoner="programmatic"))
    records = [json.loads(line) for line in (tmp_path / "t" / "samples.jsonl").read_text().splitlines()]
    chains = {it["id"]: it for it in _items(synth_items)}
    assert summary["count"] == len(chains) and summary["parse_failures"] == 0
    for record in records:
        chain = chains[record["id"]]["teacher"]
        assert record["answer_ids"] == json.loads(re.search(r"<answer>(.*?)</answer>", chain).group(1))
        assert record["new_tokens"] == 0
    with pytest.raises(ValueError, match="--benchmark synthetic"):
        EvalConfig(benchmark="revos", root=".", reasoner="programmatic")


def test_chance_row_is_a_seeded_uniform_pick(synth_items, tmp_path):
    # One id of the item's own twin per query, the same on a rerun; its score is what the metric says.
    first = run_eval(EvalConfig(benchmark="synthetic", items=str(synth_items), out=str(tmp_path / "c1"),
                                reasoner="chance"))
    again = run_eval(EvalConfig(benchmark="synthetic", items=str(synth_items), out=str(tmp_path / "c2"),
                                reasoner="chance"))
    records = [json.loads(line) for line in (tmp_path / "c1" / "samples.jsonl").read_text().splitlines()]
    items = {it["id"]: it for it in _items(synth_items)}
    for record in records:
        twin = as_item(items[record["id"]]).twin
        assert len(record["answer_ids"]) == 1 and record["answer_ids"][0] in twin.track_ids
        assert record["format_ok"] and not record["parse_failed"]
    assert first["overall"] == again["overall"] and first["parse_failures"] == 0
    assert len({r["answer_ids"][0] for r in records}) > 1  # not a constant answer


def test_summarize_refuses_nothing():
    with pytest.raises(FrsError):
        summarize([])


def test_cli_eval_with_a_tiny_model(synth_items, tmp_path, capsys):
    from fastreasonseg.distill.testing import make_tiny_chat_model

    model = make_tiny_chat_model(tmp_path / "tiny")
    out = tmp_path / "run"
    code = main(["eval", "--benchmark", "synthetic", "--items", str(synth_items), "--reasoner", str(model),
                 "--out", str(out), "--limit", "2", "--max-new-tokens", "8", "--twin-max-tokens", "200"])
    assert code == 0
    assert "summary.md" in capsys.readouterr().out
    assert json.loads((out / "summary.json").read_text())["count"] == 2
    saved = json.loads((out / "config.json").read_text())
    assert saved["max_tool_rounds"] == 3


def test_engine_follows_the_config(tmp_path):
    from fastreasonseg.distill.testing import make_tiny_chat_model
    from fastreasonseg.eval.runner import load_engine

    model = str(make_tiny_chat_model(tmp_path / "tiny"))
    engine = load_engine(EvalConfig(benchmark="synthetic", items="x.jsonl", reasoner=model, max_tool_rounds=0))
    assert engine.config.max_tool_rounds == 0
    assert engine.config.few_shot  # no adapter: the base model gets the worked examples


@pytest.mark.parametrize(("args", "message"), [
    (["--benchmark", "synthetic"], "--items"),
    (["--benchmark", "revos"], "--root"),
    (["--benchmark", "synthetic", "--items", "x.jsonl", "--perception", "magic"], "perception"),
    (["--benchmark", "nope", "--root", "."], "unknown benchmark"),
    (["--benchmark", "synthetic", "--items", "x.jsonl", "--max-tool-rounds", "-1"], "max_tool_rounds"),
])
def test_cli_eval_bad_input_is_a_clean_error(args, message, tmp_path, capsys):
    assert main(["eval", *args, "--out", str(tmp_path / "o")]) == 1
    assert message in capsys.readouterr().err


def test_eval_compare_tables(synth_items, tmp_path, capsys):
    items = _items(synth_items)
    right = RolloutEngine(_scripted(items))  # even items right, odd ones unparseable
    run_eval(EvalConfig(benchmark="synthetic", items=str(synth_items), out=str(tmp_path / "a")), right)
    run_eval(EvalConfig(benchmark="synthetic", items=str(synth_items), out=str(tmp_path / "b"),
                        reasoner="programmatic"))
    code = main(["eval-compare", f"scripted={tmp_path / 'a'}", f"teacher={tmp_path / 'b'}",
                 "--out", str(tmp_path / "t.md")])
    assert code == 0
    text = (tmp_path / "t.md").read_text()
    assert text == capsys.readouterr().out
    headline = text.split("by category x level")[0]
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in headline.splitlines()
            if line.startswith(("| scripted", "| teacher"))}
    header = text.splitlines()[0].split(" | ")
    parse = header.index("parse fail %")
    assert float(rows["scripted"][parse]) == pytest.approx(100 * sum(i % 2 for i in range(len(items))) / len(items))
    assert float(rows["teacher"][parse]) == 0.0
    assert "by category x level" in text
    # Paired bootstrap row: the teacher is right on every item, the scripted run on even ones only.
    delta = next(line for line in text.splitlines() if line.startswith("| teacher | ") and "[" in line)
    cells = [c.strip() for c in delta.strip("|").split("|")]
    records = {name: [json.loads(x) for x in (tmp_path / d / "samples.jsonl").read_text().splitlines()]
               for name, d in (("a", "a"), ("b", "b"))}
    expected = 100 * (np.mean([r["iou"] for r in records["b"]]) - np.mean([r["iou"] for r in records["a"]]))
    assert int(cells[1]) == len(items) and float(cells[2]) == pytest.approx(expected, abs=0.06)
    low, high = (float(x) for x in cells[3].strip("[]").split(","))
    assert low <= float(cells[2]) <= high
    assert main(["eval-compare", f"x={tmp_path / 'nothing'}"]) == 1
    assert "no samples.jsonl" in " ".join(capsys.readouterr().err.split())  # rich may wrap the line


def test_paired_bootstrap_interval():
    from fastreasonseg.eval.compare import paired_bootstrap

    first = [{"id": f"s{i}", "iou": 0.2} for i in range(50)]
    same_shift = [{"id": f"s{i}", "iou": 0.5} for i in range(50)] + [{"id": "extra", "iou": 1.0}]
    b = paired_bootstrap(first, same_shift)
    # Every shared pair differs by exactly 30 points: no spread, the unshared sample is ignored.
    assert b["n"] == 50 and b["delta"] == pytest.approx(30) and b["low"] == pytest.approx(30) == b["high"]
    noisy = [{"id": f"s{i}", "iou": 0.2 + (0.4 if i % 2 else -0.2)} for i in range(50)]
    b = paired_bootstrap(first, noisy)
    assert b["delta"] == pytest.approx(10) and b["low"] < 10 < b["high"] and b["high"] - b["low"] > 5
    assert paired_bootstrap(first, [{"id": "other", "iou": 1.0}]) is None
