"""Crash-safe, resumable JSONL: every record is one ``os.write`` of a whole line to an append-only file.

A run killed at any point (Ctrl-C, SIGKILL, OOM) leaves every record it finished writing
on disk: the kernel holds written bytes even if the process dies, and ``fsync`` (every
``sync_every_s`` seconds and on close) covers a machine crash. The only possible damage is
a torn last line from a write cut in the middle; :func:`repair_tail` drops it on the next
open, so resuming never reads half a record.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def repair_tail(path: Path) -> int:
    """Truncate a torn final line (no trailing newline); returns how many bytes were dropped."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb+") as handle:
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return 0
        # Walk back to the last newline in chunks (lines can be long).
        position = size
        chunk = 1 << 16
        keep = 0
        while position > 0:
            start = max(0, position - chunk)
            handle.seek(start)
            data = handle.read(position - start)
            at = data.rfind(b"\n")
            if at >= 0:
                keep = start + at + 1
                break
            position = start
        handle.truncate(keep)
        return size - keep


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Records of a JSONL file; a torn or unparseable final line is skipped, a bad middle line is an error."""
    path = Path(path)
    if not path.exists():
        return
    with path.open("r", encoding="utf-8") as handle:
        lines = handle.readlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines) and not line.endswith("\n"):
                return  # torn last line of a killed run
            raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object per line")
        yield record


class JsonlAppender:
    """Append records to ``path`` so that a killed run loses nothing it reported as written."""

    def __init__(self, path: str | Path, sync_every_s: float = 1.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dropped_bytes = repair_tail(self.path)
        self.sync_every_s = sync_every_s
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._last_sync = time.monotonic()

    def write(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        written = 0
        while written < len(line):  # os.write may write less than asked on some file systems
            written += os.write(self._fd, line[written:])
        if time.monotonic() - self._last_sync >= self.sync_every_s:
            os.fsync(self._fd)
            self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
