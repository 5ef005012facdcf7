"""Which llama.cpp build the set-up installs, and the proof that it decodes on this machine.

The set-up (``scripts/install_llama_cpp.sh``) compiles llama-cpp-python from source, portable
(``-DGGML_NATIVE=OFF``, AVX2 kernels) by default or for this CPU with ``LLAMA_BUILD=native``
(``-march=native``: AVX-512, VNNI, BF16 where present), then runs :func:`smoke` in a child
process. If a native build fails it (crash, hang, load error, different tokens at 1 and 2
threads), the portable build is installed and checked instead. The result goes to
``<venv>/llama-build.json``. Portable is the default because on the embedded 135M student at 2
threads the native build measured no faster (docs/RUNTIME.md): its matrices are too small for
wider vectors to pay.

Why a smoke test rather than trust: the project's first set-up note said a ``-march=native``
build "segfaults on first decode on this CPU family"; nobody recorded a backtrace, and on the
Zen 5 EPYC of 2026-12 the native build passes every llama.cpp test of the suite. A build that
crashes must still never reach a user's first query, so the set-up proves the installed build
decodes before it finishes.

The record also guards a copied or reused environment: a native build run on a CPU with other
flags could die of an illegal instruction mid-query, so :func:`verify_installed_build` (called when
the llama.cpp backend loads) refuses it with a message instead (``make setup`` rebuilds it).
Nothing here is from a library: llama-cpp-python builds what CMAKE_ARGS say but does not test it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fastreasonseg.errors import FrsError
from fastreasonseg.hardware import cpu_flags_digest

MODULE = "fastreasonseg.reasoning.backends.llamacpp_build"  # not __name__: that is "__main__" when run with -m
BUILDS = ("native", "portable")
RECORD_NAME = "llama-build.json"
SMOKE_PROMPT_TOKENS = 300
SMOKE_NEW_TOKENS = 16


def record_path() -> Path:
    """Where the set-up records the installed build: the environment's root (``sys.prefix``)."""
    return Path(sys.prefix) / RECORD_NAME


def greedy_probe(path: str | Path, prompt_tokens: int, new_tokens: int, threads: int,
                 threads_batch: int | None = None, n_batch: int = 512) -> dict[str, Any]:
    """Load the GGUF ``path`` with llama.cpp, prefill a fixed pseudo-random prompt and decode greedily.

    The one llama.cpp timing path of the project (the set-up's :func:`smoke` and ``frs bench
    efficiency``'s rows). Returns the generated ``tokens``, ``load_s``, ``prefill_tok_s``,
    ``decode_tok_s``, ``params_m`` and ``weight_bytes``. ``threads_batch`` (prefill) defaults to ``threads``.
    """
    import llama_cpp
    import numpy as np

    start = time.perf_counter()
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=prompt_tokens + new_tokens + 8, n_batch=n_batch,
                          n_threads=threads, n_threads_batch=threads_batch or threads, verbose=False)
    loaded = time.perf_counter() - start
    prompt = np.random.default_rng(0).integers(100, llm.n_vocab(), size=prompt_tokens).tolist()
    llm.eval(prompt[:8])  # warm-up: the first evaluation builds the compute graph
    llm.reset()
    start = time.perf_counter()
    llm.eval(prompt)
    prefill = time.perf_counter() - start
    tokens = []
    start = time.perf_counter()
    for _ in range(new_tokens):
        tokens.append(int(llm.sample(top_k=1, temp=0.0)))  # greedy, as the runtime decodes
        llm.eval([tokens[-1]])
    decode = time.perf_counter() - start
    report = {"tokens": tokens, "load_s": loaded, "prefill_tok_s": prompt_tokens / prefill,
              "decode_tok_s": new_tokens / decode, "params_m": int(llama_cpp.llama_model_n_params(llm.model)) / 1e6,
              "weight_bytes": int(llama_cpp.llama_model_size(llm.model))}
    llm.close()
    return report


def smoke(prompt_tokens: int = SMOKE_PROMPT_TOKENS, new_tokens: int = SMOKE_NEW_TOKENS) -> dict[str, Any]:
    """Decode with the embedded student as users run it (shipped adapter merged) at 1 and 2 threads.

    A fixed pseudo-random prompt, then greedy tokens (:func:`greedy_probe`); both thread counts must
    give the same tokens. Returns the tokens, prefill and decode tokens/s at 2 threads and llama.cpp's
    system info. Raises RuntimeError when the decodes disagree. Run it in a child process
    (:func:`check`): a broken build may crash the interpreter. Loading the student also builds the
    merged file's cache at set-up, so a user's first query does not wait for it.
    """
    import llama_cpp

    from fastreasonseg.reasoning.loader import default_adapter, embedded_student_gguf

    model = embedded_student_gguf()
    runs = {threads: greedy_probe(model, prompt_tokens, new_tokens, threads) for threads in (1, 2)}
    if runs[1]["tokens"] != runs[2]["tokens"]:
        raise RuntimeError(f"1 and 2 threads decode differently: {runs[1]['tokens']} vs {runs[2]['tokens']}")
    return {"tokens": runs[2]["tokens"], "prefill_tok_s": round(runs[2]["prefill_tok_s"], 1),
            "decode_tok_s": round(runs[2]["decode_tok_s"], 1), "adapter": default_adapter() is not None,
            "system_info": llama_cpp.llama_print_system_info().decode().strip(),
            "llama_cpp_version": llama_cpp.__version__}


def describe_exit(returncode: int) -> str:
    """A child's exit status in words: ``killed by SIGSEGV`` for a crash, ``exit status 1`` otherwise."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def run_child(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``argv``, expecting one JSON object as the last line of its stdout.

    Returns ``{"ok": True, ...that object}`` or ``{"ok": False, "error": why}`` for a crash, a hang
    past ``timeout`` seconds, a non-zero exit or output that is not JSON; never raises for them.
    """
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"no answer within {timeout:.0f} s"}
    if done.returncode != 0:
        tail = (done.stderr or "").strip().splitlines()[-3:]
        return {"ok": False, "error": describe_exit(done.returncode) + (": " + " | ".join(tail) if tail else "")}
    try:
        report = json.loads((done.stdout or "").strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"ok": False, "error": "the check printed no JSON report"}
    return {"ok": True, **report} if isinstance(report, dict) else {"ok": False, "error": "report is not an object"}


def check(timeout: float = 300.0, lib_path: str | None = None) -> dict[str, Any]:
    """:func:`smoke` in a child process (``lib_path``: a libllama folder instead of the installed one)."""
    env = dict(os.environ)
    if lib_path is not None:
        env["LLAMA_CPP_LIB_PATH"] = str(lib_path)
    return run_child([sys.executable, "-m", MODULE, "smoke"], timeout, env)


def write_record(build: str, report: dict[str, Any], path: Path | None = None, requested: str | None = None) -> Path:
    """Record a build that passed its check: which build (and which was asked for: a native build that failed
    leaves ``requested`` native, ``build`` portable), this CPU's flags digest, the check's figures."""
    if build not in BUILDS or (requested or build) not in BUILDS:
        raise ValueError(f"build must be one of {BUILDS}, got {build!r} (requested {requested!r})")
    path = path or record_path()
    record = {"build": build, "requested": requested or build, "cpu_flags_sha256": cpu_flags_digest(),
              **{k: report[k] for k in ("llama_cpp_version", "system_info", "prefill_tok_s", "decode_tok_s")
                 if k in report}}
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def verify_installed_build(path: Path | None = None) -> dict[str, Any] | None:
    """Refuse a native build recorded on a CPU with other flags (an illegal instruction waits there).

    Returns the record, or None when there is none (an environment not made by ``make setup``).
    """
    path = path or record_path()
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    current = cpu_flags_digest()
    if record.get("build") == "native" and current is not None and record.get("cpu_flags_sha256") != current:
        redo = f"rm -f {path} {path.parent / '.frs-setup-done'} && make setup"
        raise FrsError(f"llama.cpp in this environment was compiled for another CPU ({path} records other CPU "
                       f"flags); rebuild it for this one with `{redo}`, or with `{redo} LLAMA_BUILD=portable` for "
                       "a build that runs on any x86-64 CPU")
    return record


def main(argv: list[str] | None = None) -> int:
    """``smoke``: run :func:`smoke`, print its JSON. ``verify BUILD [REQUESTED]``: check in a child, record on
    success (REQUESTED: the build the user asked for, when BUILD is the fallback)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["smoke"]:
        print(json.dumps(smoke()))
        return 0
    if len(args) in (2, 3) and args[0] == "verify" and all(a in BUILDS for a in args[1:]):
        report = check()
        if not report["ok"]:
            print(f"llama.cpp ({args[1]} build) failed its decode check: {report['error']}", file=sys.stderr)
            return 1
        path = write_record(args[1], report, requested=args[2] if len(args) == 3 else None)
        print(f"llama.cpp {args[1]} build decodes correctly ({len(report['tokens'])} greedy tokens identical at 1 "
              f"and 2 threads; recorded in {path})")
        return 0
    print(f"usage: python -m {MODULE} smoke | verify BUILD [REQUESTED]  (BUILD: {', '.join(BUILDS)})",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
