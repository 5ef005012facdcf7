"""``frs twin build``: input collection, resumption after interruption, failure records, annotations, Ray."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fastreasonseg.cli.main import main
from fastreasonseg.errors import FrsError
from fastreasonseg.perception.batch import (
    CONFIG_NAME,
    FAILURES_NAME,
    WorkItem,
    collect_media_items,
    prepare_out_dir,
    run_build,
)
from fastreasonseg.perception.config import PerceptionConfig
from fastreasonseg.perception.testing import save_tiny_models
from fastreasonseg.twin import DigitalTwin, Frame, Source, make_object

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py: tiny models, one thread


def save_image(path, height=24, width=32, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def small_twin(label: str) -> DigitalTwin:
    obj = make_object(0, label, 0.9, (1, 1, 5, 5))
    return DigitalTwin(source=Source(kind="image", width=10, height=10), frames=(Frame(0, 0.0, (obj,)),))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_models(tmp_path_factory.mktemp("tiny_batch_models"), score_threshold=0.0,
                            use_default_vocabulary=False, extra_labels=("cup", "knife"))


def tiny_flags(config: PerceptionConfig) -> list[str]:
    return ["--detector", config.detector_model, "--segmenter", config.segmenter_model, "--depth-model",
            config.depth_model, "--device", "cpu", "--threshold", "0.0", "--no-default-vocabulary", "--label", "cup",
            "--label", "knife", "--quiet"]


# --------------------------------------------------------------------------- collecting inputs


def test_collect_files_folders_and_lists(tmp_path):
    save_image(tmp_path / "data" / "a.png")
    save_image(tmp_path / "data" / "sub" / "a.png")
    (tmp_path / "data" / "notes.md").write_text("not media", encoding="utf-8")
    single = save_image(tmp_path / "single.jpg")
    listing = tmp_path / "list.txt"
    listing.write_text("# inputs\nsingle.jpg\n\nmissing.png\n", encoding="utf-8")
    items = collect_media_items([tmp_path / "data", listing])
    assert [(i.name, i.source) for i in items] == [
        ("a", str(tmp_path / "data" / "a.png")),
        ("sub__a", str(tmp_path / "data" / "sub" / "a.png")),
        ("single", str(single)),
        ("missing", str(tmp_path / "missing.png")),  # kept so its failure is recorded
    ]
    # Same stem twice: deterministic suffixes, stable across reruns.
    again = collect_media_items([single, single])
    assert [i.name for i in again] == ["single", "single-2"]


def test_frame_folders_become_videos(tmp_path):
    for t in range(3):
        save_image(tmp_path / "JPEGImages" / "bear" / f"{t:05d}.jpg", seed=t)
        save_image(tmp_path / "JPEGImages" / "car" / f"{t:05d}.jpg", seed=t)
    items = collect_media_items([tmp_path / "JPEGImages"], frame_folders=True)
    assert [(i.name, i.source) for i in items] == [("bear", str(tmp_path / "JPEGImages" / "bear")),
                                                   ("car", str(tmp_path / "JPEGImages" / "car"))]


# --------------------------------------------------------------------------- resumption and failures


def test_interrupted_run_resumes_where_it_stopped(tmp_path):
    items = [WorkItem(name=f"item{i}", source=f"in{i}", kind="media") for i in range(4)]
    calls = []

    def interrupted(item, progress=None):
        calls.append(item.name)
        if item.name == "item2":
            raise KeyboardInterrupt  # Ctrl-C or a killed job in the middle of the run
        return small_twin(item.name)

    with pytest.raises(KeyboardInterrupt):
        run_build(items, tmp_path, interrupted, show_progress=False)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["item0.json", "item1.json"]
    (tmp_path / "item2.json.tmp").write_text("{half a twi", encoding="utf-8")  # a write cut off by a kill
    (tmp_path / "item3.json").write_text("{not a twin", encoding="utf-8")  # a corrupt output

    calls.clear()
    prepare_out_dir(tmp_path, PerceptionConfig(), overwrite=False)
    report = run_build(items, tmp_path, lambda item, progress=None: calls.append(item.name) or small_twin(item.name),
                       show_progress=False)
    assert calls == ["item2", "item3"]  # finished items are not rebuilt; the corrupt one is
    assert report.skipped == ["item0", "item1"] and report.built == ["item2", "item3"]
    assert not list(tmp_path.glob("*.tmp"))
    for i in range(4):
        assert DigitalTwin.load(tmp_path / f"item{i}.json").frames[0].objects[0].label == f"item{i}"


def test_one_bad_input_is_recorded_and_the_run_continues(tmp_path):
    items = [WorkItem(name=n, source=n, kind="media") for n in ("good1", "bad", "good2")]

    def process(item, progress=None):
        if item.name == "bad":
            raise ValueError("bad: cannot read image (truncated file)")
        return small_twin(item.name)

    report = run_build(items, tmp_path, process, show_progress=False)
    assert report.built == ["good1", "good2"] and report.failed == [("bad", "bad: cannot read image (truncated file)")]
    rows = [json.loads(line) for line in (tmp_path / FAILURES_NAME).read_text().splitlines()]
    assert rows[0]["input"] == "bad" and "truncated" in rows[0]["error"]


def test_missing_models_stop_the_run(tmp_path):
    def process(item, progress=None):
        raise FrsError("perception model weights are not available")

    with pytest.raises(FrsError):
        run_build([WorkItem("a", "a", "media")], tmp_path, process, show_progress=False)


def test_resuming_with_another_config_is_refused(tmp_path):
    prepare_out_dir(tmp_path, PerceptionConfig(frame_stride=1), overwrite=False)
    with pytest.raises(FrsError, match="frame_stride"):
        prepare_out_dir(tmp_path, PerceptionConfig(frame_stride=2), overwrite=False)
    prepare_out_dir(tmp_path, PerceptionConfig(frame_stride=2), overwrite=True)
    assert PerceptionConfig.load(tmp_path / CONFIG_NAME).frame_stride == 2


def test_a_folder_built_with_float32_before_auto_became_the_default_resumes_on_the_cpu(tmp_path):
    prepare_out_dir(tmp_path, PerceptionConfig(device="cpu", dtype="float32"), overwrite=False)
    prepare_out_dir(tmp_path, PerceptionConfig(device="cpu"), overwrite=False)  # dtype auto = float32 here
    with pytest.raises(FrsError, match="dtype"):
        prepare_out_dir(tmp_path, PerceptionConfig(device="cpu", dtype="bfloat16"), overwrite=False)


# --------------------------------------------------------------------------- the command


def test_cli_builds_twins_with_tiny_models_and_resumes(tiny, tmp_path, capsys):
    inputs = tmp_path / "inputs"
    save_image(inputs / "a.png", seed=1)
    save_image(inputs / "b.jpg", 20, 28, seed=2)
    (inputs / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "twins"
    code = main(["twin", "build", str(inputs), "--out", str(out), *tiny_flags(tiny)])
    err = capsys.readouterr().err
    assert code == 1  # one input failed; the others were built
    assert "broken.png" in err and "built 2" in err
    assert sorted(p.name for p in out.glob("*.json")) == ["a.json", "b.json"]
    for name in ("a", "b"):
        twin = DigitalTwin.load(out / f"{name}.json")
        assert twin.source.path == str(inputs / f"{name}.{'png' if name == 'a' else 'jpg'}")
    saved = PerceptionConfig.load(out / CONFIG_NAME)
    assert saved.detector_model == tiny.detector_model and saved.extra_labels == ("cup", "knife")
    assert "broken.png" in (out / FAILURES_NAME).read_text()

    (inputs / "broken.png").unlink()
    before = (out / "a.json").stat().st_mtime_ns
    assert main(["twin", "build", str(inputs), "--out", str(out), *tiny_flags(tiny)]) == 0
    assert "skipped 2" in capsys.readouterr().err
    assert (out / "a.json").stat().st_mtime_ns == before


def test_cli_annotation_mode_writes_oracle_twins(tmp_path, capsys):
    data = {"images": [{"id": 7, "file_name": "x.jpg", "height": 8, "width": 8}],
            "categories": [{"id": 1, "name": "cup"}],
            "annotations": [{"id": 3, "image_id": 7, "category_id": 1, "bbox": [1, 1, 4, 4],
                             "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]]}]}
    good = tmp_path / "instances.json"
    good.write_text(json.dumps(data), encoding="utf-8")
    bad = tmp_path / "broken.json"
    bad.write_text("{", encoding="utf-8")
    out = tmp_path / "oracle"
    code = main(["twin", "build", str(good), str(bad), "--annotations", "coco", "--out", str(out), "--quiet"])
    assert code == 1  # the broken file is reported
    twin = DigitalTwin.load(out / "instances__x.json")
    assert twin.frames[0].objects[0].id == 3 and twin.frames[0].objects[0].label == "cup"
    assert "broken.json" in (out / FAILURES_NAME).read_text()
    assert "not valid JSON" in capsys.readouterr().err


def test_cli_rejects_annotation_only_flags_without_annotations(tmp_path, capsys):
    assert main(["twin", "build", str(tmp_path), "--out", str(tmp_path / "o"), "--depth"]) == 1
    assert "only apply with --annotations" in capsys.readouterr().err


def test_ray_local_cluster_builds_the_same_twins(tiny, tmp_path, capsys, monkeypatch):
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'fastreasonseg[ray]'")
    monkeypatch.chdir(tmp_path)  # relative input paths must resolve on the workers as on the driver
    inputs = tmp_path / "inputs"
    save_image(inputs / "a.png", seed=1)
    save_image(inputs / "b.png", seed=2)
    (inputs / "c.png").write_bytes(b"corrupt")
    local = tmp_path / "local"
    distributed = tmp_path / "ray"
    assert main(["twin", "build", "inputs", "--out", str(local), *tiny_flags(tiny)]) == 1
    code = main(["twin", "build", "inputs", "--out", str(distributed), "--ray", "local", "--ray-workers", "1",
                 *tiny_flags(tiny)])
    err = capsys.readouterr().err
    assert code == 1 and "built 2" in err
    for name in ("a", "b"):
        assert DigitalTwin.load(distributed / f"{name}.json") == DigitalTwin.load(local / f"{name}.json")
    assert "c.png" in (distributed / FAILURES_NAME).read_text()
