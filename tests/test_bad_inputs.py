"""Bad input never costs finished work: each case reproduces a crash a user hit and checks the clear outcome.

The reasoner is a scripted backend put in place of the loaded model inside the engine
factory, so everything else is the real ``frs`` code path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastreasonseg.cli.main import main
from fastreasonseg.reasoning.backends.base import Generation, GenerationRequest, ReasonerBackend
from fastreasonseg.twin.core import DigitalTwin, Frame, Source, make_object


class Answer3(ReasonerBackend):
    name = "scripted"
    adapter = "/adapters/x"

    def __init__(self) -> None:
        self.calls = 0

    def complete(self, request: GenerationRequest) -> Generation:
        self.calls += 1
        return Generation(text="<reason>cup</reason>\n<answer>[3]</answer>", stop_reason="stop", new_tokens=4)


@pytest.fixture
def backend(monkeypatch) -> Answer3:
    import fastreasonseg.reasoning.factory as factory

    scripted = Answer3()
    monkeypatch.setattr(factory, "load_reasoner", lambda config: scripted)
    return scripted


def write_bomb_png(path: Path, side: int = 20000) -> Path:
    """A PNG whose header claims side x side pixels (PIL refuses it as a decompression bomb before decoding)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def write_twin(folder: Path, source_path: str | None = None) -> Path:
    objects = (make_object(3, "cup", 0.9, [4, 4, 20, 20]), make_object(5, "bowl", 0.8, [30, 30, 60, 50]))
    twin = DigitalTwin(source=Source(kind="image", width=64, height=64, path=source_path), frames=(Frame(0, 0.0, objects),))
    path = folder / "scene.json"
    twin.save(path)
    return path


@pytest.mark.parametrize("make_out", [lambda tmp: tmp / "taken.txt", lambda tmp: tmp / "taken.txt" / "sub"],
                         ids=["out-is-a-file", "out-under-a-file"])
def test_an_unusable_output_folder_is_refused_before_any_reasoning(tmp_path: Path, backend: Answer3, capsys,
                                                                   make_out) -> None:
    (tmp_path / "taken.txt").write_text("mine")
    code = main(["segment", str(write_twin(tmp_path)), "-q", "the cup", "--out", str(make_out(tmp_path))])
    assert code == 1
    assert "choose another --out" in capsys.readouterr().err
    assert backend.calls == 0  # refused before the reasoner ran
    assert (tmp_path / "taken.txt").read_text() == "mine"


def test_an_undrawable_background_costs_the_overlay_not_the_result(tmp_path: Path, backend: Answer3, capsys,
                                                                   monkeypatch) -> None:
    write_bomb_png(tmp_path / "photo.png")
    twin_path = write_twin(tmp_path, source_path="photo.png")
    assert main(["segment", str(twin_path), "-q", "the cup", "--out", str(tmp_path / "out")]) == 0
    [result] = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["answer"]["object_ids"] == [3]
    assert (tmp_path / "out" / "overlay.png").exists()  # drawn on a blank canvas instead of the bomb

    def broken_overlay(*args, **kwargs):
        raise OSError(28, "No space left on device")

    import fastreasonseg.pipeline.overlay as overlay

    monkeypatch.setattr(overlay, "write_overlay", broken_overlay)
    assert main(["segment", str(twin_path), "-q", "the cup", "--out", str(tmp_path / "out2")]) == 0
    assert json.loads((tmp_path / "out2" / "result.json").read_text())[0]["answer"]["object_ids"] == [3]
    assert "overlay overlay not written" in capsys.readouterr().out


def test_twin_show_with_a_bomb_image_says_so(tmp_path: Path, capsys) -> None:
    write_bomb_png(tmp_path / "photo.png")
    code = main(["twin", "show", str(write_twin(tmp_path)), "--render", str(tmp_path / "x.png"),
                 "--image", str(tmp_path / "photo.png")])
    assert code == 1
    assert "too large to decode safely" in capsys.readouterr().err


@pytest.mark.parametrize(("queries", "words"), [
    ([""], "non-empty query"),
    (["   "], "non-empty query"),
    (["the cup", ""], "query 2 is empty"),
    (["x" * 501], "limit is 500"),
    (["a\x00b"], "control characters"),
])
def test_the_cli_refuses_the_queries_the_service_refuses(tmp_path: Path, backend: Answer3, capsys, queries,
                                                         words) -> None:
    args = ["segment", str(write_twin(tmp_path)), "--out", str(tmp_path / "out")]
    for query in queries:
        args += ["-q", query]
    assert main(args) == 1
    assert words in capsys.readouterr().err
    assert backend.calls == 0


def test_too_many_queries_are_refused_by_both(tmp_path: Path, backend: Answer3, capsys) -> None:
    from fastreasonseg.pipeline.inputs import MAX_QUERIES
    from fastreasonseg.serve.config import ServeConfig

    (tmp_path / "queries.txt").write_text("\n".join(f"the cup {i}" for i in range(MAX_QUERIES + 1)))
    assert main(["segment", str(write_twin(tmp_path)), "--queries", str(tmp_path / "queries.txt"),
                 "--out", str(tmp_path / "out")]) == 1
    assert f"the limit is {MAX_QUERIES}" in capsys.readouterr().err
    assert ServeConfig().max_queries == MAX_QUERIES


def test_a_scene_too_big_for_the_prompt_is_narrowed_and_says_so(tmp_path: Path, monkeypatch, capsys) -> None:
    import fastreasonseg.reasoning.factory as factory

    prompts = []

    class AnswerFirstMug(Answer3):
        def complete(self, request: GenerationRequest) -> Generation:
            prompts.append(request.messages[-1]["content"])
            return Generation(text="<reason>mug</reason>\n<answer>[1999]</answer>", stop_reason="stop", new_tokens=4)

    monkeypatch.setattr(factory, "load_reasoner", lambda config: AnswerFirstMug())
    # 2,000 objects: the id list alone is far past the twin budget
    labels = ["chair", "book", "bottle", "plant"]
    objects = [make_object(i, labels[i % 4], 0.9, [i % 600, (i // 600) * 10, i % 600 + 8, (i // 600) * 10 + 8])
               for i in range(1, 1999)]
    objects.append(make_object(1999, "mug", 0.6, [620, 400, 630, 410]))  # small and unremarkable, but named
    twin = DigitalTwin(source=Source(kind="image", width=640, height=480), frames=(Frame(0, 0.0, tuple(objects)),))
    twin.save(tmp_path / "big.json")
    assert main(["segment", str(tmp_path / "big.json"), "-q", "the mug", "--out", str(tmp_path / "out"),
                 "--no-overlay"]) == 0
    assert "scene reduced" in capsys.readouterr().out
    [details] = json.loads((tmp_path / "out" / "rollout.json").read_text())
    assert details["answer_ids"] == [1999] and "scene reduced" in details["notes"][0]
    from fastreasonseg.twin.serialize import estimate_tokens

    assert estimate_tokens(prompts[0]) < 1600  # it fits the twin budget (1,200) plus the request
    assert "1999" in prompts[0]  # the named object is among the candidates


def test_deeply_nested_json_is_an_invalid_twin_not_a_recursion_error(tmp_path: Path, backend: Answer3, capsys) -> None:
    bomb = tmp_path / "deep.json"
    bomb.write_text("[" * 200000 + "]" * 200000)
    assert main(["twin", "validate", str(bomb)]) == 1
    assert "nested too deeply" in capsys.readouterr().out  # validate reports on stdout, like every verdict
    assert main(["segment", str(bomb), "-q", "the cup", "--out", str(tmp_path / "out")]) == 1
    assert "nested too deeply" in capsys.readouterr().err
    assert backend.calls == 0


@pytest.mark.parametrize(("override", "field", "value"), [
    ("learning_rate=3e-4", "learning_rate", 3e-4),  # YAML reads 3e-4 as a string
    ("weight_decay=0", "weight_decay", 0.0),  # an int where a float is declared
    ("lora_r=8", "lora_r", 8),
])
def test_overrides_take_the_fields_type(override: str, field: str, value) -> None:
    from fastreasonseg.distill.config import SFTRunConfig as SFTConfig

    config = SFTConfig.load(overrides=[override, "items=x.jsonl", "chains=y.jsonl"])
    assert getattr(config, field) == value and type(getattr(config, field)) is type(value)


@pytest.mark.parametrize(("override", "words"), [
    ("learning_rate=fast", "learning_rate='fast' is not a number"),
    ("lora_r=eight", "lora_r='eight' is not a whole number"),
    ("lora_r=2.5", "lora_r=2.5 is not a whole number"),
])
def test_bad_overrides_name_the_key_the_value_and_the_type(override: str, words: str) -> None:
    from fastreasonseg.distill.config import SFTRunConfig as SFTConfig

    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        SFTConfig.load(overrides=[override, "items=x.jsonl", "chains=y.jsonl"])


def test_the_sft_command_accepts_a_learning_rate_written_as_people_write_it(tmp_path: Path, capsys) -> None:
    code = main(["sft", "--items", str(tmp_path / "missing.jsonl"), "--chains", str(tmp_path / "c.jsonl"),
                 "--out", str(tmp_path / "run"), "--set", "learning_rate=3e-4"])
    assert code == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "does not exist" in err and "TypeError" not in err  # past config validation, to the data check
    assert "Converting" not in err  # and the data is checked before the model loads


def test_bf16_is_refused_on_a_cpu_without_bf16_arithmetic() -> None:
    from fastreasonseg.distill.models import check_bf16
    from fastreasonseg.errors import FrsError

    check_bf16(False, cpuinfo="flags: avx2")  # float32 is always fine
    check_bf16(True, cpuinfo="flags: avx2 avx512f avx512_bf16")
    check_bf16(True, cpuinfo="flags: avx2 amx_bf16 amx_tile")
    with pytest.raises(FrsError, match="Set bf16=false"):
        check_bf16(True, cpuinfo="flags: fpu avx2 fma")
