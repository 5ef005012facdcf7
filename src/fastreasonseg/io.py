"""Atomic file writes: readers see the old file or the new one, never half of it.

Every writer writes a temporary sibling ``<name>.tmp`` (same directory, so the final
``os.replace`` is a rename within one file system), then renames it over the target.
Parent folders are created. If writing fails the temporary file is removed and the target
is left as it was. ``fsync=True`` also flushes the data to disk before the rename (survives
a power cut, not just a crash of the process).

The temporary name is fixed, not random, so a folder can sweep up what an interrupted
run left behind (``perception.batch`` deletes stale ``*.json.tmp``); two processes must
therefore not write the same target at the same time.

Imports nothing from the project: any layer may use it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"


def temp_path_for(path: str | Path) -> Path:
    """The temporary sibling an atomic write of ``path`` goes through: ``<name>.tmp``."""
    path = Path(path)
    return path.with_name(path.name + TMP_SUFFIX)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write to; on a clean exit it replaces ``path``.

    For writers that need a file name rather than bytes (e.g. a library that opens the file
    itself). On an exception the temporary file is deleted and the exception propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path`` as a Path."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        if fsync:
            handle.flush()
            os.fsync(handle.fileno())
    return path


def atomic_write_text(path: str | Path, text: str, *, encoding: str = "utf-8", newline: str | None = None,
                      fsync: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically, as :meth:`Path.write_text` would; returns ``path`` as a Path."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding=encoding, newline=newline) as handle:
        handle.write(text)
        if fsync:
            handle.flush()
            os.fsync(handle.fileno())
    return path


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = None, sort_keys: bool = False,
                      fsync: bool = False, **dumps_options: Any) -> Path:
    """``json.dumps(obj, indent=..., sort_keys=..., **dumps_options)`` written atomically as UTF-8.

    The object is serialised before anything is written, so an unserialisable object leaves
    no file behind.
    """
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, **dumps_options)
    return atomic_write_text(path, text, fsync=fsync)
