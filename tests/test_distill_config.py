"""Stage configs: the shipped YAML files load, overrides apply, bad values fail with a message that says how to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fastreasonseg.distill.config import (
    PAPER_SFT,
    RLRunConfig,
    SFTRunConfig,
    TeacherConfig,
    default_student,
    parse_overrides,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
KINDS = {"teacher": TeacherConfig, "sft": SFTRunConfig, "rl": RLRunConfig}


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    cls = KINDS[path.name.split("_")[0]]
    config = cls.load(path)
    assert config.to_dict()["items"]


def test_sft_defaults_are_cpu_sized_and_documented_against_the_paper():
    config = SFTRunConfig(items="i.jsonl", chains="c.jsonl")
    assert (config.lora_r, config.lora_alpha) == (16, 32)
    assert PAPER_SFT == {"lora_r": 64, "lora_alpha": 128, "learning_rate": 5e-5, "weight_decay": 0.01, "epochs": 3}
    model, gguf = default_student()
    assert (config.model, config.gguf_file) == (model, gguf)
    assert gguf is None or gguf.endswith(".gguf")


@pytest.mark.parametrize(("overrides", "expected"), [
    (["lora_r=32"], {"lora_r": 32}),
    (["epochs=0.5", "limit=null"], {"epochs": 0.5, "limit": None}),
    (["lora_targets=[q_proj, v_proj]"], {"lora_targets": ["q_proj", "v_proj"]}),
    (["model=Qwen/Qwen3-0.6B"], {"model": "Qwen/Qwen3-0.6B"}),
    ({"seed": 3}, {"seed": 3}),
])
def test_parse_overrides(overrides, expected):
    assert parse_overrides(overrides) == expected


def test_overrides_apply_on_top_of_yaml(tmp_path):
    path = tmp_path / "sft.yaml"
    path.write_text(yaml.safe_dump({"items": "a.jsonl", "chains": "c.jsonl", "lora_r": 8}))
    config = SFTRunConfig.load(path, ["lora_r=4", "lora_targets=[q_proj]"])
    assert config.lora_r == 4 and config.lora_targets == ("q_proj",)
    saved = yaml.safe_load(config.save(tmp_path / "out").read_text())
    assert saved["config_class"] == "SFTRunConfig" and saved["lora_r"] == 4 and "torch" in saved["versions"]
    assert SFTRunConfig.from_dict({k: v for k, v in saved.items() if k not in ("config_class", "versions")}) == config


@pytest.mark.parametrize(("cls", "values", "message"), [
    (TeacherConfig, {}, "items must name"),
    (TeacherConfig, {"items": "i", "kind": "gpt"}, "kind must be one of"),
    (TeacherConfig, {"items": "i", "iou_threshold": 1.0}, "iou_threshold"),
    (SFTRunConfig, {"items": "i", "chains": "c", "learning_rate": 2.0}, "learning_rate"),
    (SFTRunConfig, {"items": "i", "chains": "c", "dtype": "int8"}, "dtype must be"),
    (SFTRunConfig, {"items": "i", "chains": "c", "epochs": 0}, "epochs > 0 or max_steps"),
    (RLRunConfig, {"items": "i", "epsilon": 1.5}, "epsilon"),
    (RLRunConfig, {"items": "i", "beta": -1}, "beta"),
    (RLRunConfig, {"items": "i", "judge": "gpt4"}, "judge must be"),
    (RLRunConfig, {"items": "i", "temperature": 0}, "temperature"),
    (RLRunConfig, {"items": "i", "reward_weights": {"style": 1}}, "reward_weights keys"),
    (RLRunConfig, {"items": "i", "max_new_tokens_per_turn": 500, "max_new_tokens": 100}, "max_new_tokens_per_turn"),
])
def test_invalid_values_are_explained(cls, values, message):
    with pytest.raises(ValueError, match=message):
        cls(**values)


def test_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n- not a mapping\n")
    with pytest.raises(ValueError, match="YAML mapping"):
        TeacherConfig.load(bad)
    with pytest.raises(ValueError, match="cannot read config"):
        TeacherConfig.load(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["lora_r"])
    with pytest.raises(ValueError, match="not a mapping"):
        RLRunConfig.load(None, ["items=i", "beta.x=1"])


def test_teacher_mode_and_zero_weights_drop_rewards():
    teacher = RLRunConfig(items="i", teacher_mode=True)
    assert [name for name, _ in teacher.active_rewards] == ["format", "accuracy"]
    no_format = RLRunConfig.load(None, ["items=i", "reward_weights.format=0"])
    assert [name for name, _ in no_format.active_rewards] == ["accuracy", "reasoning"]
    with pytest.raises(ValueError, match="weight 0"):
        _ = RLRunConfig.load(None, ["items=i", "rewards=[format]", "reward_weights.format=0"]).active_rewards


@pytest.mark.parametrize(("argv", "message"), [
    (["sft", "--items", "i.jsonl"], "chains must name"),
    (["sft", "--items", "i.jsonl", "--chains", "c.jsonl", "--set", "lora_r=0"], "lora_r"),
    (["rl", "--items", "i.jsonl", "--set", "num_generations=1"], "num_generations"),
    (["rl", "--items", "i.jsonl", "--judge", "gpt"], "judge must be"),
    (["rl", "--config", "missing.yaml"], "cannot read config"),
    (["teacher", "--items", "i.jsonl", "--kind", "oracle"], "kind must be one of"),
])
def test_cli_config_errors_exit_1_with_the_message(argv, message, capsys):
    from fastreasonseg.cli.main import main

    assert main(argv) == 1
    assert message in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("command", ["teacher", "sft", "rl", "export-student"])
def test_cli_help(command, capsys):
    from fastreasonseg.cli.main import main

    assert main([command, "--help"]) == 0
    assert "Usage" in capsys.readouterr().out
