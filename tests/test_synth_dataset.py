"""``frs data synth``: determinism, resumption, split disjointness, held-out subsets, loaders and the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from fastreasonseg.cli.main import main
from fastreasonseg.data.items import ItemError, item_from_row, load_dataset, load_items
from fastreasonseg.data.synth import (
    ConfigMismatch,
    SynthConfig,
    holdout_categories,
    holdout_kind,
    scene_fingerprint,
    synthesize,
)


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")


def test_same_seed_same_bytes_and_resumption_completes_identically(tmp_path: Path) -> None:
    full = SynthConfig(split="train", n=6, seed=2)
    synthesize(full, tmp_path / "a")
    synthesize(full, tmp_path / "b")
    expected = (tmp_path / "a" / "train.jsonl").read_bytes()
    assert (tmp_path / "b" / "train.jsonl").read_bytes() == expected
    # an interrupted run: 4 items, then a torn half line; resuming to 6 gives the same file
    synthesize(SynthConfig(split="train", n=4, seed=2), tmp_path / "c")
    with (tmp_path / "c" / "train.jsonl").open("a") as handle:
        handle.write('{"id": "train-s2-000004", "twin"')
    stats = synthesize(full, tmp_path / "c")
    assert stats["generation"]["items_written"] == 2
    assert (tmp_path / "c" / "train.jsonl").read_bytes() == expected
    saved = json.loads((tmp_path / "c" / "train.config.json").read_text())
    assert saved["n"] == 6 and saved["seed"] == 2


def test_resuming_with_other_settings_is_refused(tmp_path: Path) -> None:
    synthesize(SynthConfig(split="val", n=2, seed=1), tmp_path)
    with pytest.raises(ConfigMismatch, match="seed=1"):
        synthesize(SynthConfig(split="val", n=2, seed=9), tmp_path)


def test_image_and_video_items_of_one_seed_have_distinct_ids(tmp_path: Path) -> None:
    synthesize(SynthConfig(split="val", n=2, seed=3), tmp_path / "img")
    synthesize(SynthConfig(split="val", n=2, seed=3, video=True, num_frames=6), tmp_path / "vid")
    images = load_items(tmp_path / "img" / "val.jsonl")
    videos = load_items(tmp_path / "vid" / "val.jsonl")
    assert [i.id for i in images] == ["val-s3-000000", "val-s3-000001"]
    assert [i.id for i in videos] == ["val-s3-v000000", "val-s3-v000001"]
    assert not {i.scene_id for i in images} & {i.scene_id for i in videos}
    with pytest.raises(ValueError, match=r"num_frames must be 5\.\.64"):
        SynthConfig(split="val", n=2, video=True, num_frames=4)


def test_splits_are_disjoint_and_hold_out_categories(tmp_path: Path) -> None:
    held = holdout_categories()
    assert 10 <= len(held) <= 40
    fingerprints: dict[str, set[str]] = {}
    for split in ("train", "val", "test"):
        synthesize(SynthConfig(split=split, n=10, seed=0), tmp_path)
        items = load_items(tmp_path / f"{split}.jsonl")
        fingerprints[split] = {scene_fingerprint(i.clean_twin) for i in items}
        for item in items:
            assert scene_fingerprint(item.clean_twin) == item.meta["scene_fingerprint"]
            labels = {o.label for f in item.clean_twin.frames for o in f.objects}
            assert item.holdout == holdout_kind(split, int(item.id.rsplit("-", 1)[1]))
            if item.holdout == "category":
                assert set(item.meta["answer_labels"]) & held
            else:
                assert not labels & held, (item.id, labels & held)
    assert not fingerprints["train"] & fingerprints["val"]
    assert not fingerprints["train"] & fingerprints["test"]
    assert not fingerprints["val"] & fingerprints["test"]
    test_items = load_items(tmp_path / "test.jsonl")
    assert {i.holdout for i in test_items} == {None, "phrasing", "category"}


def test_loaders(tmp_path: Path) -> None:
    synthesize(SynthConfig(split="train", n=3, seed=4, video=True), tmp_path)
    path = tmp_path / "train.jsonl"
    items = load_items(path)
    dataset = load_dataset(path)
    assert len(dataset) == 3 and set(dataset.column_names) >= {"query", "teacher", "answer_ids", "twin", "level"}
    for row, item in zip(dataset, items, strict=True):
        assert item_from_row(row).to_dict() == item.to_dict()
    bad = tmp_path / "bad.jsonl"
    lines = path.read_text().splitlines()
    broken = json.loads(lines[1])
    broken["level"] = 7
    bad.write_text(lines[0] + "\n" + json.dumps(broken) + "\n")
    with pytest.raises(ItemError, match=r"bad.jsonl:2.level: expected 1..4"):
        load_items(bad)
    bad.write_text("{not json\n")
    with pytest.raises(ItemError, match=r"bad\.jsonl:1: not valid JSON"):
        load_items(bad)


def test_cli_synth_and_stats(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "synth"
    code = main(["data", "synth", "--out", str(out), "--split", "val", "--n", "3", "--seed", "1", "--video",
                 "--noise", "low", "--render"])
    assert code == 0
    items = load_items(out / "val.jsonl")
    assert len(items) == 3 and all(i.meta["noise_level"] in (0.0, 0.3) for i in items)
    for item in items:
        assert (out / item.meta["render"]).suffix == ".gif" and (out / item.meta["render"]).stat().st_size > 0
    stats = json.loads((out / "val.stats.json").read_text())
    assert stats["n"] == 3 and sum(stats["category_level"].values()) == 3
    capsys.readouterr()
    assert main(["data", "stats", str(out / "val.jsonl")]) == 0
    printed = capsys.readouterr().out
    assert "3 items" in printed and "L4" in printed and "teacher chains" in printed


def test_category_weights_change_the_category_shares_only_when_unequal() -> None:
    from fastreasonseg.data.queries import BUILDERS
    from fastreasonseg.data.synth import _CELL, _rng

    default = SynthConfig(split="train", n=900, seed=0, video=True)
    assert SynthConfig(split="train", n=900, seed=0, video=True,
                       category_weights={"semantic": 2, "spatial": 2, "temporal": 2}) == default
    # on images temporal cannot be drawn, so its weight leaves the draw uniform
    assert SynthConfig(split="train", category_weights={"temporal": 3}).category_weights is None
    cells = [(c, lev) for c in default.categories for lev in default.levels if (c, lev) in BUILDERS]

    def temporal_share(config: SynthConfig) -> float:
        drawn = [config.draw_cell(cells, _rng(config, i, _CELL))[0] for i in range(config.n)]
        return drawn.count("temporal") / len(drawn)

    assert 0.28 < temporal_share(default) < 0.39  # 4 of 12 cells
    assert 0.44 < temporal_share(dataclasses.replace(default, category_weights={"temporal": 2})) < 0.56
    assert temporal_share(dataclasses.replace(default, category_weights={"semantic": 0, "spatial": 0})) == 1.0


def test_cli_category_weights_are_saved(tmp_path: Path) -> None:
    assert main(["data", "synth", "--out", str(tmp_path), "--split", "val", "--n", "1", "--video",
                 "--category-weights", "spatial=0.5, temporal=2"]) == 0
    saved = json.loads((tmp_path / "val.config.json").read_text())
    assert saved["category_weights"] == {"semantic": 1.0, "spatial": 0.5, "temporal": 2.0}


@pytest.mark.parametrize(("args", "message"), [
    (["--category-weights", "temporal"], "category weights look like temporal=2"),
    (["--category-weights", "temporal=x"], "category weights look like temporal=2"),
    (["--category-weights", "colour=2"], "category_weights names ['colour']"),
    (["--category-weights", "temporal=-1"], "must be a number in [0, 1000]"),
    (["--category-weights", "semantic=0,spatial=0"], "weight 0"),
    (["--noise", "loud"], "noise level must be a number"),
    (["--n", "0"], "n must be between"),
    (["--split", "dev"], "split must be one of"),
])
def test_cli_rejects_bad_settings(tmp_path: Path, capsys: pytest.CaptureFixture, args: list, message: str) -> None:
    code = main(["data", "synth", "--out", str(tmp_path), "--split", "train", "--n", "2", *args])
    assert code == 1
    assert message in capsys.readouterr().err


def test_cli_config_file_with_overrides(tmp_path: Path) -> None:
    config = tmp_path / "synth.yaml"
    config.write_text("split: val\nn: 2\nseed: 3\nnoise: medium\nsentence_share: 1.0\n")
    assert main(["data", "synth", "--out", str(tmp_path / "o"), "--config", str(config), "--n", "1"]) == 0
    saved = json.loads((tmp_path / "o" / "val.config.json").read_text())
    assert saved["n"] == 1 and saved["noise"] == 0.6 and saved["sentence_share"] == 1.0
    assert load_items(tmp_path / "o" / "val.jsonl")[0].is_sentence
