"""``frs bench <kind>``: efficiency benchmarks, one subcommand per kind.

Kinds so far: ``reasoning`` (:mod:`fastreasonseg.eval.reasoning_bench`). Add a kind by adding a
command to ``bench_app`` that parses its options and calls its module's importable
function; benchmarks are commands, never timed tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fastreasonseg.reasoning.backends.gguf_merge import DEFAULT_LORA_MODE

bench_app = typer.Typer(help="Efficiency benchmarks (latency, throughput, memory).", no_args_is_help=True)


@bench_app.command("reasoning")
def reasoning_command(
    items: Annotated[Path, typer.Option("--items", help="Synthetic items JSONL (frs data synth).")],
    n: Annotated[int, typer.Option("--n", help="Number of items (one query per item's twin).")] = 50,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for reasoning_bench.json.")] = Path("bench_out"),
    reasoner: Annotated[str, typer.Option("--reasoner", help="Reasoner spec (see frs segment).")] = "default",
    adapter: Annotated[str | None, typer.Option("--adapter", help="A PEFT LoRA adapter folder.")] = None,
    backend: Annotated[str, typer.Option("--backend", help="auto, hf, llamacpp or openai.")] = "auto",
    dtype: Annotated[str, typer.Option("--dtype", help="transformers backend: auto, float32, bfloat16.")] = "auto",
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads for decoding.")] = None,
    lora_mode: Annotated[str, typer.Option("--lora-mode", help="llama.cpp: apply the adapter per token (runtime) "
                                           "or load a merged copy (merged).")] = DEFAULT_LORA_MODE,
    reuse_scenes: Annotated[int, typer.Option("--reuse-scenes", help="Scenes for the prefix-reuse comparison "
                                              "(0 skips it).")] = 3,
    queries_per_scene: Annotated[int, typer.Option("--queries-per-scene", help="Queries per scene in the "
                                                   "prefix-reuse comparison.")] = 5,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Generated tokens per query.")] = 640,
    unconstrained: Annotated[bool, typer.Option("--unconstrained", help="No protocol grammar (llama.cpp).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No per-query lines.")] = False,
) -> int:
    """Latency per query (median, p90), generated tokens/s, peak memory and the prefix-reuse speed-up."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from fastreasonseg.errors import FrsError
    from fastreasonseg.eval.reasoning_bench import ReasoningBenchConfig, bench_reasoning, write_report
    from fastreasonseg.reasoning.engine import RolloutConfig
    from fastreasonseg.reasoning.loader import ReasonerConfig

    console = Console(highlight=False)
    try:
        config = ReasoningBenchConfig(
            items=str(items), n=n, reuse_scenes=reuse_scenes, queries_per_scene=queries_per_scene,
            reasoner=ReasonerConfig(spec=reasoner, adapter=adapter, backend=backend, dtype=dtype, threads=threads,
                                    lora_mode=lora_mode),
            rollout=RolloutConfig(max_new_tokens=max_new_tokens, constrained=not unconstrained))
        report = bench_reasoning(config, log=None if quiet else (lambda line: console.print(escape(line))))
    except ValueError as exc:  # bad options, unreadable or malformed items (ItemError is a ValueError)
        raise FrsError(str(exc)) from None
    path = write_report(report, out)
    table = Table("metric", "value", title=f"reasoning bench: {escape(report['reasoner'])}, {report['n']} queries")
    reuse = report["prefix_reuse"]
    rows = [
        ("latency per query, median / p90", f"{report['latency_s']['median']:.2f} s / {report['latency_s']['p90']:.2f} s"),
        ("generated tokens/s (end to end)", f"{report['generated_tokens_per_s']:.1f}"),
        ("new tokens per query, median", f"{report['new_tokens']['median']:.0f}"),
        ("prompt tokens per query, median (cached share)",
         f"{report['prompt_tokens']['median']:.0f} ({report['prompt_tokens']['cached_fraction']:.0%})"),
        ("peak resident memory", f"{report['peak_rss_mb']:.0f} MB"),
        ("model load", f"{report['load_s']:.1f} s"),
        ("format OK / accuracy (J > 0.5) / mean J",
         f"{report['format_ok_rate']:.0%} / {report['accuracy']:.0%} / {report['mean_j']:.3f}"),
    ]
    if reuse.get("scenes"):
        rows.append((f"prefix reuse, {reuse['queries_per_scene']} queries x {reuse['scenes']} scenes",
                     f"{reuse['seconds_with_cache']:.1f} s vs {reuse['seconds_reencoding']:.1f} s re-encoding = "
                     f"{reuse['speedup']:.2f}x (identical outputs {reuse['identical_outputs']})"))
        if "seconds_batched_with_cache" in reuse:
            rows.append(("  the same queries batched (with cache)", f"{reuse['seconds_batched_with_cache']:.1f} s"))
    for stage, part in report.get("time_split", {}).items():
        rows.append((f"  time per query: {stage.removesuffix('_s')}", f"{1000 * part['per_query_s']:.0f} ms ({part['share']:.0%})"))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    console.print(f"report: {path}")
    return 0


@bench_app.command("efficiency")
def efficiency_command(
    reasoner: Annotated[list[str] | None, typer.Option("--reasoner", help="student; qwen3-0.6b, qwen3-1.7b or "
                                                       "qwen3-8b (transformers bf16); qwen3-0.6b-gguf etc. (llama.cpp, "
                                                       "like the student; built once, cached). Repeatable; ratios "
                                                       "are to the first.")] = None,
    include_large: Annotated[bool, typer.Option("--include-large", help="Add the teacher size (Qwen3-8B, "
                                                "~17 GB RAM).")] = False,
    prompt_tokens: Annotated[int, typer.Option("--prompt-tokens", help="Prefill length.")] = 256,
    new_tokens: Annotated[int, typer.Option("--new-tokens", help="Greedy tokens decoded.")] = 32,
    threads: Annotated[int, typer.Option("--threads", help="Decode threads.")] = 1,
    gguf_type: Annotated[str, typer.Option("--gguf-type", help="llama.cpp type of the qwen3-*-gguf rows (Q8_0 as "
                                           "the merged student; Q4_1 as its base).")] = "Q8_0",
    perception: Annotated[bool, typer.Option("--perception/--no-perception", help="Time perception per frame "
                                             "(full-size random weights).")] = True,
    latency: Annotated[bool, typer.Option("--latency/--no-latency", help="Time full queries with the "
                                          "embedded student.")] = True,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for efficiency.json / efficiency.md.")]
    = Path("bench_out"),
) -> int:
    """Reasoners side by side (tokens/s vs the measured memory-bandwidth bound), query and frame latency, FPS."""
    import json

    from fastreasonseg.errors import FrsError
    from fastreasonseg.eval.bench import DEFAULT_REASONERS, LARGE, BenchConfig, efficiency_report, format_report

    names = tuple(reasoner or DEFAULT_REASONERS) + (LARGE if include_large else ())
    try:
        config = BenchConfig(reasoners=tuple(dict.fromkeys(names)), prompt_tokens=prompt_tokens,
                             new_tokens=new_tokens, threads=threads, gguf_type=gguf_type)
    except ValueError as exc:
        raise FrsError(str(exc)) from None
    report = efficiency_report(config, perception=perception, latency=latency)
    out.mkdir(parents=True, exist_ok=True)
    (out / "efficiency.json").write_text(json.dumps(report, indent=1) + "\n")
    text = format_report(report)
    (out / "efficiency.md").write_text(text)
    typer.echo(text)  # plain: rich would wrap the Markdown table at the terminal width
    typer.echo(f"report: {out / 'efficiency.md'}")
    return 0


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
