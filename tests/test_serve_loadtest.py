"""The load-test script runs end to end (small and bounded): server child on loopback, report with no errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "loadtest_serve.py"


def test_loadtest_reports_throughput_latency_and_memory(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    completed = subprocess.run([sys.executable, str(SCRIPT), "--clients", "2", "--requests", "5", "--queries", "2",
                                "--max-seconds", "60", "--json", str(out)], capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["requests_ok"] == report["requests_sent"] == 10 and report["errors"] == 0
    assert report["requests_per_s"] > 0 and 0 < report["latency_p50_s"] <= report["latency_p99_s"]
    assert report["server_peak_rss_mb"] > 0


def test_loadtest_refuses_unbounded_runs() -> None:
    completed = subprocess.run([sys.executable, str(SCRIPT), "--clients", "100"], capture_output=True, text=True,
                               timeout=60)
    assert completed.returncode == 2 and "keep it bounded" in completed.stderr
