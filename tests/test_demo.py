"""``frs demo`` end to end with a tiny random model loaded through the real reasoner loader."""

from __future__ import annotations

import json

import pytest

from fastreasonseg.cli.main import main
from fastreasonseg.eval.demo import DemoConfig, build_demo_scenes


def test_demo_scenes_are_deterministic_and_cover_each_category():
    config = DemoConfig(out="unused", per_category=2, seed=3)
    first, second = build_demo_scenes(config), build_demo_scenes(config)
    assert [s.name for s in first] == ["image", "video"]
    assert [[q.text for q in s.queries] for s in first] == [[q.text for q in s.queries] for s in second]
    categories = [q.category for s in first for q in s.queries]
    assert categories == ["semantic", "semantic", "spatial", "spatial", "temporal", "temporal"]
    assert first[1].scene.twin.is_video and not first[0].scene.twin.is_video
    for scene in first:
        for query in scene.queries:  # every ground truth names objects of the scene's twin
            assert set(query.answer_ids) <= set(scene.scene.twin.track_ids)


def test_frs_demo_writes_report_overlays_and_results(tmp_path, tiny_chat_model, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--reasoner", str(tiny_chat_model), "--per-category", "1",
                 "--max-new-tokens", "12", "--twin-max-tokens", "200"])
    assert code == 0
    assert "report.md" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert [r["category"] for r in report["results"]] == ["semantic", "spatial", "temporal"]
    assert set(report["seconds"]) == {"scenes", "load", "reasoning", "total"}
    markdown = (out / "report.md").read_text()
    for result in report["results"]:
        folder = out / result["folder"]
        contract = json.loads((folder / "result.json").read_text())
        assert isinstance(contract, list) and contract[0]["query"] == result["query"]
        assert set(contract[0]) == {"query", "answer", "reasoning", "frames", "timing"}
        saved = json.loads((folder / "score.json").read_text())
        assert saved["query"] == result["query"] and saved["truth_ids"]
        assert saved["rollout"]["query"] == result["query"]
        suffix = ".gif" if result["category"] == "temporal" else ".png"
        assert (folder / f"answer{suffix}").stat().st_size > 0 and (folder / f"truth{suffix}").stat().st_size > 0
        # A random model almost never answers; whatever it did is reported, not hidden.
        assert result["correct"] == (result["iou"] > 0.5)
        assert result["query"].replace("|", "\\|") in markdown
    assert (out / "image_scene.png").is_file() and (out / "video_scene.gif").is_file()
    assert json.loads((out / "config.json").read_text())["reasoner"] == str(tiny_chat_model)


@pytest.mark.parametrize("bad", [{"per_category": 0}, {"categories": ("colour",)}, {"twin_max_tokens": 10}])
def test_demo_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        DemoConfig(**bad)


def test_frs_demo_bad_option_is_a_clean_error(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--per-category", "0"]) == 1
    assert "per_category" in capsys.readouterr().err


def test_report_sets_expectations_by_adapter(tmp_path):
    """Base model: says no adapter is loaded; an adapter: the score its eval_summary.json records, read, not typed in."""
    from fastreasonseg.eval.demo import DemoReport, report_markdown
    from fastreasonseg.reasoning.loader import DEFAULT_ADAPTER_DIR, EVAL_SUMMARY

    seconds = {"total": 1.0, "scenes": 0.1, "load": 0.1, "reasoning": 0.8}

    def text(adapter):
        return report_markdown(DemoReport(out=str(tmp_path), reasoner="default", adapter=adapter, results=[],
                                          seconds=seconds))

    mine = tmp_path / "my_adapter"
    mine.mkdir()
    (mine / EVAL_SUMMARY).write_text(json.dumps({"data": "my dev set", "metrics": {"overall": {"gIoU": 0.634,
                                                                                              "count": 40}}}))
    shipped = json.loads((DEFAULT_ADAPTER_DIR / EVAL_SUMMARY).read_text())
    shipped_giou = (shipped.get("metrics") or shipped)["overall"]["gIoU"]  # evaluate_reasoner's or `frs eval`'s shape
    base, shipped, other, bare = (text(None), text(str(DEFAULT_ADAPTER_DIR)), text(str(mine)),
                                  text(str(tmp_path / "bare")))
    assert "No distilled adapter is loaded" in base and "scored" not in base
    assert f"scored {100 * shipped_giou:.0f}% gIoU" in shipped and "No distilled adapter" not in shipped
    assert "scored 63% gIoU on my dev set (40 items)" in other
    assert "carries no measured score" in bare
    cli = tmp_path / "cli_adapter"  # an `frs eval` summary.json as export-student copies it
    cli.mkdir()
    (cli / EVAL_SUMMARY).write_text(json.dumps({"data": "dev100", "count": 100, "overall": {"gIoU": 0.39, "count": 100}}))
    assert "scored 39% gIoU on dev100 (100 items)" in text(str(cli))
