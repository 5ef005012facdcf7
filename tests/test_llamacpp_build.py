"""The set-up's llama.cpp build check: the installed build decodes (in a child process, at 1 and 2
threads, identically), crashes and hangs of a child are reported instead of raised, and a native
build recorded on another CPU is refused before it can hit an illegal instruction."""

from __future__ import annotations

import json
import sys

import pytest

from fastreasonseg.errors import FrsError
from fastreasonseg.hardware import cpu_flags_digest
from fastreasonseg.reasoning.backends.llamacpp_build import (
    check,
    describe_exit,
    main,
    run_child,
    verify_installed_build,
    write_record,
)

CPUINFO = "processor\t: 0\nflags\t\t: sse2 avx2 fma avx512f\n"


@pytest.mark.slow
def test_installed_build_decodes_identically_at_one_and_two_threads():
    pytest.importorskip("llama_cpp")
    report = check()
    assert report["ok"], report.get("error")
    assert len(report["tokens"]) == 16 and all(isinstance(t, int) for t in report["tokens"])
    assert report["adapter"] is True  # the shipped adapter was applied
    assert report["prefill_tok_s"] > 0 and report["decode_tok_s"] > 0
    assert report["system_info"].startswith("CPU")


def test_a_crashing_child_is_reported_with_its_signal():
    report = run_child([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"], 30)
    assert report == {"ok": False, "error": "killed by SIGSEGV"}


def test_a_hanging_child_is_reported_not_waited_for():
    report = run_child([sys.executable, "-c", "import time; time.sleep(30)"], 1)
    assert report == {"ok": False, "error": "no answer within 1 s"}


def test_a_failing_or_silent_child_is_reported():
    failed = run_child([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"], 30)
    assert failed == {"ok": False, "error": "exit status 3: boom"}
    silent = run_child([sys.executable, "-c", "print('not json')"], 30)
    assert silent == {"ok": False, "error": "the check printed no JSON report"}
    assert run_child([sys.executable, "-c", "print('{\"a\": 1}')"], 30) == {"ok": True, "a": 1}


def test_a_build_that_cannot_load_fails_the_check(tmp_path):
    pytest.importorskip("llama_cpp")
    (tmp_path / "libllama.so").write_text("not a library")
    report = check(timeout=120, lib_path=str(tmp_path))
    assert not report["ok"] and report["error"].startswith("exit status 1")


def test_describe_exit():
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(2) == "exit status 2"


def test_cpu_flags_digest_ignores_flag_order_and_needs_flags():
    assert cpu_flags_digest(CPUINFO) == cpu_flags_digest("flags : avx512f fma avx2 sse2\n")
    assert cpu_flags_digest(CPUINFO) != cpu_flags_digest("flags : sse2 avx2 fma\n")
    assert cpu_flags_digest("processor : 0\n") is None


def test_native_build_recorded_on_another_cpu_is_refused(tmp_path):
    path = write_record("native", {"llama_cpp_version": "0.3.36", "decode_tok_s": 1.0}, tmp_path / "rec.json")
    record = json.loads(path.read_text())
    assert record["build"] == record["requested"] == "native" and record["llama_cpp_version"] == "0.3.36"
    assert verify_installed_build(path)["build"] == "native"  # recorded on this CPU: accepted
    if cpu_flags_digest() is None:
        pytest.skip("this machine's CPU flags cannot be read")
    path.write_text(json.dumps({**record, "cpu_flags_sha256": cpu_flags_digest(CPUINFO)}))
    with pytest.raises(FrsError, match=r"compiled for another CPU.*LLAMA_BUILD=portable"):
        verify_installed_build(path)
    # a portable build runs anywhere; a missing or unreadable record means "not made by make setup"
    path.write_text(json.dumps({**record, "build": "portable", "cpu_flags_sha256": "x"}))
    assert verify_installed_build(path)["build"] == "portable"
    assert verify_installed_build(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{")
    assert verify_installed_build(tmp_path / "bad.json") is None


def test_fallback_record_keeps_what_was_requested(tmp_path):
    path = write_record("portable", {}, tmp_path / "rec.json", requested="native")
    assert json.loads(path.read_text())["requested"] == "native"
    with pytest.raises(ValueError, match="build must be one of"):
        write_record("fast", {}, tmp_path / "rec.json")


def test_main_rejects_bad_arguments(capsys):
    assert main(["verify", "turbo"]) == 2
    assert "usage" in capsys.readouterr().err
