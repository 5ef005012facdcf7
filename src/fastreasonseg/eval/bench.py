"""Efficiency benchmark: reasoner tokens/s against this machine's memory-bandwidth bound, side by side.

Run::

    frs bench efficiency                     # student vs the Qwen3-0.6B architecture (llama.cpp and transformers)
    frs bench efficiency --include-large     # + the teacher size (Qwen3-8B architecture)
    frs bench efficiency --reasoner qwen3-1.7b --reasoner student --no-perception

Per reasoner (each in its own process, so peak memory is its own and one model's pages do not
slow the next): parameter count, bytes of weights read per generated token, load time,
prefill tokens/s over a ``prompt_tokens`` prompt, decode tokens/s over ``new_tokens`` greedy
tokens, peak resident memory, and the decode speed as a share of the memory-bandwidth bound
(bandwidth / weight bytes per token: a decoder reads every weight once per token, so on a CPU
it cannot decode faster than that). Ratios are to the first reasoner, so rows measured on a
noisy shared machine stay comparable. The bound is measured here with a large numpy
reduction (read bandwidth of one core and of all cores).

Reasoners:

- ``student``: the embedded SmolLM2-135M GGUF through llama.cpp with the shipped adapter merged
  (the runtime's default path; the merged tensors are Q8_0, so more bytes per token than Q4_1);
- ``qwen3-0.6b-gguf`` (and ``-1.7b-gguf``, ``-8b-gguf``): the Qwen3 architecture at a released
  size with random weights in the student's runtime and quantisation: written as an F16 GGUF
  by :mod:`fastreasonseg.eval.gguf_export` (the SmolLM2 tokenizer, padded to Qwen3's
  151936-token vocabulary so the embedding/output matrix keeps its true size), quantised by
  llama.cpp to ``gguf_type`` (default Q8_0, as the merged student) and timed by the same code
  as ``student``, so its ratio to the student compares model sizes, not runtimes. Built once
  into ``<cache>/bench/`` (in its own process when rows are isolated, so the build's memory
  is not the row's peak): at 0.6B the build holds the random bf16 model (~1.2 GB), writes a
  ~1.2 GB F16 file that is deleted afterwards and keeps a ~0.64 GB Q8_0 file; estimated at
  well under a minute on 2 cores (not measured). 8B needs ~16 GB of RAM and ~25 GB of disk
  for the build;
- ``qwen3-0.6b`` / ``qwen3-1.7b`` / ``qwen3-8b``: the Qwen3 architecture at the released
  sizes with random weights in bfloat16 through transformers (random weights cost the same
  time per token as trained ones; nothing is downloaded). ``qwen3-8b`` stands in for the
  teacher size and needs ~17 GB of RAM, so it runs only when asked.

End-to-end latency per query (twin + rollout with tool rounds) is measured separately by
:func:`query_latency` on a demo scene, and perception per frame, for both perception presets
side by side (``quality`` and ``fast``), by :func:`fastreasonseg.perception.bench.perception_benchmark`;
:func:`efficiency_report` combines them into per-query and per-frame latency and FPS.

Departure from the paper: the paper reports GPU latency; this project's numbers are CPU
numbers on the machine named in the report, with the bound that explains them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fastreasonseg.eval.gguf_export import DEFAULT_QUANT_TYPE, check_quant_type

# Released Qwen3 sizes (config.json of Qwen/Qwen3-0.6B, -1.7B, -8B).
QWEN3_SIZES: dict[str, dict[str, Any]] = {
    "qwen3-0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, tie_word_embeddings=True),
    "qwen3-1.7b": dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, tie_word_embeddings=True),
    "qwen3-8b": dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, tie_word_embeddings=False),
}
QWEN3_VOCAB = 151_936
STUDENT = "student"
GGUF_SUFFIX = "-gguf"  # qwen3-0.6b-gguf: that size through llama.cpp, quantised like the student
QWEN3_GGUF = tuple(f"{name}{GGUF_SUFFIX}" for name in QWEN3_SIZES)
LARGE = ("qwen3-8b",)
DEFAULT_REASONERS = (STUDENT, "qwen3-0.6b-gguf", "qwen3-0.6b")
# Bump when the benchmark's Qwen3 GGUF changes for the same inputs (older cache files are then ignored).
_GGUF_FORMAT_VERSION = 1


@dataclass
class BenchConfig:
    """What to measure; kept small by default so a run takes a couple of minutes on 2 cores."""

    reasoners: tuple[str, ...] = DEFAULT_REASONERS
    prompt_tokens: int = 256
    new_tokens: int = 32
    threads: int = 1
    isolate: bool = True
    tiny: bool = False  # tests: tiny Qwen3 configs instead of the released sizes
    gguf_type: str = DEFAULT_QUANT_TYPE  # the -gguf rows' llama.cpp type (Q8_0, as the merged student's tensors)

    def __post_init__(self) -> None:
        known = (STUDENT, *QWEN3_GGUF, *QWEN3_SIZES)
        unknown = [r for r in self.reasoners if r not in known]
        if unknown or not self.reasoners:
            raise ValueError(f"reasoners must be among {list(known)}, got {list(self.reasoners)}")
        if not 8 <= self.prompt_tokens <= 8192:
            raise ValueError(f"prompt_tokens must be 8..8192, got {self.prompt_tokens}")
        if not 4 <= self.new_tokens <= 1024:
            raise ValueError(f"new_tokens must be 4..1024, got {self.new_tokens}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        self.reasoners = tuple(self.reasoners)
        self.gguf_type = check_quant_type(self.gguf_type)


def memory_bandwidth(megabytes: int = 256, repeats: int = 3) -> dict[str, float]:
    """Memory bandwidth in GB/s: best of ``repeats`` full sums / copies of a ``megabytes`` float32 array.

    numpy's sum runs on one core, which is how a 1-thread decode reads weights; the copy
    figure (read + write) is reported too as a second opinion.
    """
    array = np.ones(megabytes * 2**20 // 4, dtype=np.float32)
    target = np.empty_like(array)
    array.sum()  # fault the pages in before timing
    best_sum = best_copy = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        array.sum()
        best_sum = min(best_sum, time.perf_counter() - start)
        start = time.perf_counter()
        np.copyto(target, array)
        best_copy = min(best_copy, time.perf_counter() - start)
    read, copy = array.nbytes / best_sum / 1e9, 2 * array.nbytes / best_copy / 1e9
    # The bound uses the faster of the two: numpy's pairwise float sum can be compute-limited on
    # a slow core, and copy traffic (read + write) is still memory traffic a matvec could use.
    return {"read_gb_s": round(read, 2), "copy_gb_s": round(copy, 2), "bound_gb_s": round(max(read, copy), 2),
            "array_mb": megabytes}


def _rss_peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _time_gguf(path: Path, config: BenchConfig) -> dict[str, Any]:
    """Time ``path`` through llama.cpp: a random ``prompt_tokens`` prefill (all cores) and ``new_tokens`` greedy steps.

    The one timing path of every llama.cpp row (:func:`~fastreasonseg.reasoning.backends.llamacpp_build.greedy_probe`,
    shared with the set-up's decode check), so rows differ only by their model file.
    """
    from fastreasonseg.reasoning.backends.llamacpp_build import greedy_probe

    report = greedy_probe(path, config.prompt_tokens, config.new_tokens, config.threads,
                          threads_batch=os.cpu_count(), n_batch=min(512, config.prompt_tokens))
    report.pop("tokens")
    return report


def _bench_student(config: BenchConfig) -> dict[str, Any]:
    from fastreasonseg.reasoning.loader import embedded_student_gguf

    path = embedded_student_gguf()  # what the runtime loads by default: the shipped adapter merged
    return {"reasoner": STUDENT, "model": f"{path.name} (llama.cpp)", **_time_gguf(path, config)}


def _qwen3_config(name: str, tiny: bool, vocab: int | None = None) -> Any:
    """The released size ``name``, or a tiny test config, as a Qwen3Config over ``vocab`` tokens (default 151936, tiny 1000)."""
    from transformers import Qwen3Config

    sizes = dict(QWEN3_SIZES[name])
    if tiny:
        sizes.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, head_dim=16)
    return Qwen3Config(vocab_size=vocab or (1000 if tiny else QWEN3_VOCAB), max_position_embeddings=4096, **sizes)


def _random_model(model_config: Any, dtype: Any) -> Any:
    """A causal LM of ``model_config`` with small uniform random weights in ``dtype``, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config, dtype=dtype)
    # Allocate, then fill with small uniform noise: far faster than the default initialisers
    # at 0.6-8 B parameters, and the time per token does not depend on the values.
    model = model.to_empty(device="cpu")
    model.tie_weights()  # to_empty gives tied tensors separate storage; re-tie so the size is the real one
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.uniform_(-0.02, 0.02, generator=generator)
        # Buffers (rotary frequencies) came out of to_empty uninitialised: rebuild that module on the CPU.
        model.model.rotary_emb = type(model.model.rotary_emb)(config=model_config)
    return model.eval()


def _bench_qwen3(name: str, config: BenchConfig) -> dict[str, Any]:
    import torch

    torch.set_num_threads(config.threads)
    model_config = _qwen3_config(name, config.tiny)  # imports transformers' Qwen3 outside the timed load
    start = time.perf_counter()
    model = _random_model(model_config, torch.bfloat16)
    loaded = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    generator = torch.Generator().manual_seed(0)
    prompt = torch.randint(100, model_config.vocab_size, (1, config.prompt_tokens), generator=generator)
    with torch.inference_mode():
        model(prompt[:, :8])  # warm-up (allocator, kernels)
        start = time.perf_counter()
        out = model(prompt, use_cache=True)
        prefill = time.perf_counter() - start
        past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        start = time.perf_counter()
        for _ in range(config.new_tokens):
            out = model(token, past_key_values=past, use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        decode = time.perf_counter() - start
    return {"reasoner": name, "model": f"Qwen3 {name[6:].upper()} architecture, random bf16 (transformers)"
            + (" [tiny test config]" if config.tiny else ""),
            "params_m": params / 1e6, "weight_bytes": weight_bytes, "load_s": loaded,
            "prefill_tok_s": config.prompt_tokens / prefill, "decode_tok_s": config.new_tokens / decode}


def _build_qwen3_gguf(name: str, tiny: bool, gguf_type: str, target: Path) -> Path:
    """Write a random-weight Qwen3 of size ``name`` as an F16 GGUF next to ``target``, quantise it into ``target``."""
    import torch

    from fastreasonseg.eval.gguf_export import export_hf_model, quantize_gguf
    from fastreasonseg.reasoning.loader import default_gguf_path

    tokenizer = default_gguf_path()
    # The tiny test config takes the tokenizer's own size (a GGUF cannot have fewer rows than tokens).
    vocab = _gguf_token_count(tokenizer) if tiny else None
    model = _random_model(_qwen3_config(name, tiny, vocab), torch.bfloat16)
    f16 = target.with_name(target.name + ".f16")
    try:
        export_hf_model(model, f16, dtype="F16", tokenizer_gguf=tokenizer,
                        name=f"random Qwen3 {name[6:].upper()} architecture" + (" [tiny]" if tiny else ""))
        del model
        return quantize_gguf(f16, target, gguf_type)
    finally:
        f16.unlink(missing_ok=True)


def _gguf_token_count(path: Path) -> int:
    from fastreasonseg.reasoning.backends.gguf_lora import open_gguf

    return len(open_gguf(path).fields["tokenizer.ggml.tokens"].data)


def qwen3_gguf_path(name: str, config: BenchConfig) -> Path:
    """The benchmark's random Qwen3 GGUF of size ``name`` in ``config.gguf_type``, built once and cached.

    With ``config.isolate`` the build runs in its own process, so the row's peak memory is llama.cpp's.
    """
    from fastreasonseg.reasoning.backends.gguf_lora import cached_file
    from fastreasonseg.reasoning.loader import default_gguf_path

    tokenizer = default_gguf_path()
    sizes = "tiny" if config.tiny else QWEN3_SIZES[name]
    identity = (name, sizes, QWEN3_VOCAB, config.gguf_type, tokenizer.name, tokenizer.stat().st_size,
                _GGUF_FORMAT_VERSION)
    key = hashlib.sha256(repr(identity).encode()).hexdigest()[:16]

    def build(target: Path) -> Path:
        print(f"writing a random {name} GGUF ({config.gguf_type}) once; cached as {target}", file=sys.stderr)
        if not config.isolate:
            return _build_qwen3_gguf(name, config.tiny, config.gguf_type, target)
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(_build_qwen3_gguf, name, config.tiny, config.gguf_type, target).result()

    return cached_file("bench", f"{name}{'-tiny' if config.tiny else ''}.{config.gguf_type}.{key}.gguf", build)


def _bench_qwen3_gguf(name: str, config: BenchConfig) -> dict[str, Any]:
    path = qwen3_gguf_path(name, config)
    return {"reasoner": f"{name}{GGUF_SUFFIX}",
            "model": f"Qwen3 {name[6:].upper()} architecture, random {config.gguf_type} GGUF (llama.cpp)"
            + (" [tiny test config]" if config.tiny else ""), **_time_gguf(path, config)}


def bench_reasoner(name: str, config: BenchConfig) -> dict[str, Any]:
    """Measure one reasoner in this process (see the module docstring for the fields)."""
    if name == STUDENT:
        row = _bench_student(config)
    elif name.endswith(GGUF_SUFFIX):
        row = _bench_qwen3_gguf(name.removesuffix(GGUF_SUFFIX), config)
    else:
        row = _bench_qwen3(name, config)
    row["peak_rss_mb"] = _rss_peak_mb()
    row["threads"] = config.threads
    return row


def _child(name: str, config: dict[str, Any], queue: Any) -> None:
    try:
        queue.put(bench_reasoner(name, BenchConfig(**config)))
    except BaseException as exc:  # reported by the parent; a child's traceback would be lost
        queue.put({"reasoner": name, "error": f"{type(exc).__name__}: {exc}"})


def reasoner_benchmark(config: BenchConfig, bandwidth: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """One row per reasoner, with the bandwidth bound and ratios to the first row."""
    bandwidth = bandwidth or memory_bandwidth()
    rows = []
    for name in config.reasoners:
        if not config.isolate:
            rows.append(bench_reasoner(name, config))
            continue
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        process = context.Process(target=_child, args=(name, asdict(config), queue))
        process.start()
        rows.append(queue.get())
        process.join()
    first = next((r for r in rows if "error" not in r), None)
    for row in rows:
        if "error" in row:
            continue
        bound = bandwidth["bound_gb_s"] * 1e9 / row["weight_bytes"]
        row["bound_tok_s"] = bound
        row["share_of_bound"] = row["decode_tok_s"] / bound
        for key in ("params_m", "decode_tok_s", "prefill_tok_s", "peak_rss_mb"):
            row[f"{key}_ratio"] = row[key] / first[key] if first and first[key] else None
    return rows


def query_latency(reasoner: str = "default", queries: int = 2, seed: int = 0) -> dict[str, Any]:
    """End-to-end seconds per query of a reasoner spec on the demo's image scene (twin text, tools, parsing)."""
    from fastreasonseg.eval.demo import DemoConfig, build_demo_scenes
    from fastreasonseg.reasoning.factory import build_engine

    scene = build_demo_scenes(DemoConfig(out="unused", seed=seed, per_category=max(1, queries // 2),
                                         categories=("semantic", "spatial")))[0]
    start = time.perf_counter()
    engine = build_engine(reasoner, max_new_tokens=320)
    loaded = time.perf_counter() - start
    results = engine.run_many(scene.scene.twin, [q.text for q in scene.queries][:queries])
    return {"reasoner": reasoner, "load_s": loaded, "queries": len(results),
            "seconds_per_query": float(np.mean([r.seconds for r in results])),
            "new_tokens_per_query": float(np.mean([r.new_tokens for r in results])),
            "prompt_tokens_first": results[0].prompt_tokens}


def efficiency_report(config: BenchConfig, *, perception: bool = True, latency: bool = True,
                      perception_frames: int = 3) -> dict[str, Any]:
    """Bandwidth bound, reasoner rows, and (optionally) perception per frame and query latency combined."""
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg()[0]},
                              "bandwidth": memory_bandwidth()}
    report["reasoners"] = reasoner_benchmark(config, report["bandwidth"])
    if latency:
        report["query"] = query_latency()
    if perception:
        from fastreasonseg.perception.bench import perception_benchmark, summarize

        # Both presets side by side: components, an image frame end to end, a steady-state video frame.
        rows = perception_benchmark(frames=perception_frames, warmup=1, tiny=config.tiny)
        report["perception"] = rows
        report["perception_summary"] = summary = summarize(rows)
        if "query" in report:
            for entry in summary.values():
                if entry.get("image_frame_s") is not None:
                    entry["image_query_s"] = entry["image_frame_s"] + report["query"]["seconds_per_query"]
    return report


def format_report(report: dict[str, Any]) -> str:
    """Markdown tables: the bound, reasoners side by side with ratios to the first, latency split."""
    bw = report["bandwidth"]
    lines = [f"Memory bandwidth (numpy, 1 core): read {bw['read_gb_s']:.1f} GB/s, copy {bw['copy_gb_s']:.1f} GB/s "
             f"(bound uses {bw['bound_gb_s']:.1f}); "
             f"{report['machine']['cpus']} CPUs, load average {report['machine']['load_avg']:.1f}.", "",
             "| reasoner | params (M) | weights (MB) | load s | prefill tok/s | decode tok/s | bound tok/s | "
             "% of bound | peak MB | params x | decode x | prefill x | memory x |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in report["reasoners"]:
        if "error" in row:
            lines.append(f"| {row['reasoner']} | error: {row['error']} |")
            continue
        ratio = [f"{row[k]:.2f}" if row.get(k) is not None else "-"
                 for k in ("params_m_ratio", "decode_tok_s_ratio", "prefill_tok_s_ratio", "peak_rss_mb_ratio")]
        lines.append(f"| {row['reasoner']} | {row['params_m']:.0f} | {row['weight_bytes'] / 1e6:.0f} | "
                     f"{row['load_s']:.1f} | {row['prefill_tok_s']:.0f} | {row['decode_tok_s']:.1f} | "
                     f"{row['bound_tok_s']:.1f} | {100 * row['share_of_bound']:.0f} | {row['peak_rss_mb']:.0f} | "
                     + " | ".join(ratio) + " |")
    if "query" in report:
        q = report["query"]
        lines += ["", f"Reasoning per query ({q['reasoner']}, demo image scene, {q['queries']} queries): "
                      f"{q['seconds_per_query']:.2f} s, {q['new_tokens_per_query']:.0f} generated tokens; "
                      f"model load {q['load_s']:.2f} s."]
    if "perception" in report:
        from fastreasonseg.perception.bench import format_table

        lines += ["", "Perception per 640x480 frame, full-size random weights (image and video rows end to end; "
                      "video: steady state, 5 tracks, one key-frame cycle):", "", format_table(report["perception"])]
        for preset, entry in report.get("perception_summary", {}).items():
            parts = []
            if entry.get("image_frame_s") is not None:
                parts.append(f"image frame {entry['image_frame_s']:.2f} s")
            if entry.get("video_frame_s") is not None:
                parts.append(f"video frame {entry['video_frame_s']:.2f} s ({entry['video_fps']:.2f} FPS)")
            parts.append(f"peak RSS {entry['peak_rss_mb']:.0f} MB")
            if entry.get("image_query_s") is not None:
                parts.append(f"image query (perception + reasoning) {entry['image_query_s']:.2f} s")
            lines.append(f"- {preset}: " + ", ".join(parts) + ".")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--include-large", action="store_true", help="add the teacher size (Qwen3-8B, ~17 GB RAM)")
    parser.add_argument("--no-perception", action="store_true")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--prompt-tokens", type=int, default=256)
    parser.add_argument("--json", help="also write the report as JSON here")
    args = parser.parse_args()
    bench = BenchConfig(reasoners=DEFAULT_REASONERS + (LARGE if args.include_large else ()),
                        new_tokens=args.new_tokens, prompt_tokens=args.prompt_tokens)
    result = efficiency_report(bench, perception=not args.no_perception, latency=not args.no_latency)
    print(format_report(result))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)
