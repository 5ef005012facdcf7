"""``frs twin validate|show`` through the real entry point ``fastreasonseg.cli.main.main``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastreasonseg.cli.main import main
from fastreasonseg.twin import DigitalTwin, Frame, Source, make_object
from fastreasonseg.twin.render import color_for

H, W = 48, 64
BACKGROUND = 235  # render_frame's blank canvas grey
ALPHA = 0.45  # render_frame's default fill opacity


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    # rich wraps at 80 columns when not on a terminal; the assertions are about content, not layout
    monkeypatch.setenv("COLUMNS", "400")


def block(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[r0:r1, c0:c1] = True
    return mask


def image_twin(label: str = "cup") -> DigitalTwin:
    objects = (
        make_object(3, label, 0.9, [30, 20, 60, 40], mask=block(20, 40, 30, 60), depth=(0.25, 0.02)),
        make_object(5, "plate", 0.6, [2, 30, 20, 46], mask=block(30, 46, 2, 20), depth=(0.7, 0.1)),
    )
    return DigitalTwin(source=Source(kind="image", width=W, height=H, path="kitchen.jpg"),
                       frames=(Frame(index=0, time=0.0, objects=objects),))


def video_twin() -> DigitalTwin:
    frames = tuple(
        Frame(index=i * 5, time=i * 0.5,
              objects=(make_object(1, "ball", 0.8, [10 + 20 * i, 10, 20 + 20 * i, 20],
                                   mask=block(10, 20, 10 + 20 * i, 20 + 20 * i)),))
        for i in range(3)
    )
    return DigitalTwin(source=Source(kind="video", width=W, height=H, fps=10.0, num_frames=15), frames=frames)


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out, captured.err


def expected_fill(object_id: int, base: int = BACKGROUND) -> np.ndarray:
    return (np.full(3, base) * (1 - ALPHA) + np.array(color_for(object_id), dtype=np.float32) * ALPHA).astype(np.uint8)


# --------------------------------------------------------------------------- validate


def test_validate_ok(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = image_twin().save(tmp_path / "ok.json")
    video = video_twin().save(tmp_path / "video.json")
    code, out, _ = run(capsys, "twin", "validate", str(path), str(video))
    assert code == 0
    assert f"OK {path}: image, 1 frame(s), 2 track(s), 2 object instance(s)" in out
    assert f"OK {video}: video, 3 frame(s), 1 track(s), 3 object instance(s)" in out


def _bad_score(d: dict) -> None:
    d["frames"][0]["objects"][0]["score"] = 1.5


def _bad_box(d: dict) -> None:
    d["frames"][0]["objects"][1]["box"] = [2, 30, 20, 99]


def _extra_root(d: dict) -> None:
    d["comment"] = "hi"


def _corrupt_mask(d: dict) -> None:
    d["frames"][0]["objects"][0]["mask"]["counts"] = "!!"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (_bad_score, "frames[0].objects[0].score: must be <= 1.0"),
        (_bad_box, "frames[0].objects[1].box:"),
        (_extra_root, "<root>: unknown fields ['comment']"),
        (_corrupt_mask, "frames[0].objects[0].mask.counts: not a valid COCO RLE"),
    ],
    ids=["score", "box", "root-field", "rle"],
)
def test_validate_invalid_names_field(tmp_path: Path, capsys: pytest.CaptureFixture, mutate, field: str) -> None:
    data = image_twin().to_dict()
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    code, out, _ = run(capsys, "twin", "validate", str(path))
    assert code == 1
    assert f"INVALID {path}" in out
    assert f"{path}: {field}" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read"), ("{not json", "not valid JSON"), ("[]", "<root>: expected an object")],
    ids=["missing", "not-json", "list-root"],
)
def test_validate_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture, content, message: str) -> None:
    path = tmp_path / "twin.json"
    if content is not None:
        path.write_text(content)
    code, out, _ = run(capsys, "twin", "validate", str(path))
    assert code == 1 and "INVALID" in out and message in out


def test_validate_mixed_files_reports_each(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good = image_twin().save(tmp_path / "good.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    code, out, _ = run(capsys, "twin", "validate", str(bad), str(good))
    assert code == 1
    assert f"INVALID {bad}" in out and f"OK {good}" in out
    for field in ("schema:", "source:", "frames:"):
        assert f"{bad}: {field}" in out


# --------------------------------------------------------------------------- show


def test_show_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = image_twin().save(tmp_path / "twin.json")
    code, out, _ = run(capsys, "twin", "show", str(path))
    assert code == 0
    assert f"{path}  image 64x48, 1 frame(s), source kitchen.jpg" in out
    rows = [line for line in out.splitlines() if " cup " in line or " plate " in line]
    assert len(rows) == 2
    cup = rows[0].split("│")
    assert [c.strip() for c in cup[1:-1]] == ["3", "cup", "0.90", "0", "30, 20, 60, 40", "600", "0.25"]


def test_show_video_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = video_twin().save(tmp_path / "video.json")
    code, out, _ = run(capsys, "twin", "show", str(path))
    assert code == 0
    assert "video 64x48, 3 frame(s) at 10.0 fps" in out
    assert "0-10 (3)" in out  # the ball's track: first-last frame index (count)


def test_show_prints_labels_literally(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = image_twin(label="[bold]mug[/bold]").save(tmp_path / "twin.json")
    code, out, _ = run(capsys, "twin", "show", str(path))
    assert code == 0 and "[bold]mug[/bold]" in out


def test_show_render_png(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = image_twin().save(tmp_path / "twin.json")
    out_png = tmp_path / "pictures" / "twin.png"
    code, out, _ = run(capsys, "twin", "show", str(path), "--render", str(out_png))
    assert code == 0 and f"rendered to {out_png}" in out
    picture = Image.open(out_png)
    assert picture.size == (W, H) and picture.mode == "RGB"
    pixels = np.asarray(picture)
    # inside each mask, away from outline and label: the object's colour blended over the canvas
    np.testing.assert_allclose(pixels[30, 45], expected_fill(3), atol=1)
    np.testing.assert_allclose(pixels[40, 10], expected_fill(5), atol=1)
    assert tuple(pixels[5, 60]) == (BACKGROUND,) * 3  # outside every object
    assert not np.array_equal(expected_fill(3), expected_fill(5))


def test_show_render_video_frame_and_background_image(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = video_twin().save(tmp_path / "video.json")
    background = tmp_path / "bg.png"
    Image.fromarray(np.full((H, W, 3), (10, 20, 30), dtype=np.uint8)).save(background)
    out_png = tmp_path / "frame10.png"
    code, _, _ = run(capsys, "twin", "show", str(path), "--render", str(out_png), "--frame", "10",
                     "--image", str(background))
    assert code == 0
    pixels = np.asarray(Image.open(out_png))
    blended = (np.array([10, 20, 30]) * (1 - ALPHA) + np.array(color_for(1)) * ALPHA).astype(np.uint8)
    np.testing.assert_allclose(pixels[15, 55], blended, atol=1)  # the ball in frame 10: cols 50..59
    assert tuple(pixels[15, 15]) == (10, 20, 30)  # where the ball was in frame 0: plain background


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--frame", "7", "--render", "{tmp}/x.png"], "no frame with index 7"),
        (["--render", "{tmp}/twin.json/x.png"], "cannot write"),  # parent is a file
        (["--render", "{tmp}/x.notanimage"], "cannot write"),
        (["--render", "{tmp}/x.png", "--image", "{tmp}/twin.json"], "cannot read image"),
    ],
    ids=["unknown-frame", "parent-is-file", "bad-extension", "bad-background"],
)
def test_show_render_errors(tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str], message: str) -> None:
    path = image_twin().save(tmp_path / "twin.json")
    code, _, err = run(capsys, "twin", "show", str(path), *[e.format(tmp=tmp_path) for e in extra])
    assert code == 1
    assert err.startswith("error:") and message in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"schema": "fastreasonseg.twin/v1", "source": {"kind": "image", "width": 4, "height": 4}, '
         '"frames": [{"index": 0, "objects": [{"id": 1, "label": "x", "box": [0, 0, 9, 2]}]}]}',
         "frames[0].objects[0].box"),
        ("\x00\x01garbage", "not valid JSON"),
        (None, "cannot read"),
    ],
    ids=["invalid-field", "corrupt", "missing"],
)
def test_show_corrupt_file(tmp_path: Path, capsys: pytest.CaptureFixture, content, message: str) -> None:
    path = tmp_path / "twin.json"
    if content is not None:
        path.write_text(content)
    code, _, err = run(capsys, "twin", "show", str(path), "--render", str(tmp_path / "x.png"))
    assert code == 1
    assert "error: invalid digital twin" in err and message in err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("argv", [["twin", "show"], ["twin", "validate", "--bogus", "x.json"]],
                         ids=["missing-argument", "unknown-option"])
def test_usage_errors_exit_2_without_traceback(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and err
