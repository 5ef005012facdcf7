"""fastreasonseg.io: atomic writes replace the target whole, create folders and leave nothing behind on failure."""

from __future__ import annotations

import json
import os

import pytest

from fastreasonseg.io import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text, temp_path_for


def test_text_bytes_and_json_land_in_new_folders(tmp_path):
    text = atomic_write_text(tmp_path / "a" / "b" / "note.txt", "héllo\n")
    assert text == tmp_path / "a" / "b" / "note.txt" and text.read_text(encoding="utf-8") == "héllo\n"
    data = atomic_write_bytes(str(tmp_path / "c" / "blob.bin"), b"\x00\x01")
    assert data.read_bytes() == b"\x00\x01"
    doc = atomic_write_json(tmp_path / "d" / "x.json", {"b": 1, "a": [1, 2]}, indent=2, sort_keys=True, fsync=True)
    assert doc.read_text(encoding="utf-8") == json.dumps({"b": 1, "a": [1, 2]}, indent=2, sort_keys=True)
    assert sorted(p.name for p in tmp_path.rglob("*.tmp")) == []


def test_replaces_an_existing_file_through_a_sibling_temp(tmp_path, monkeypatch):
    target = tmp_path / "twin.json"
    target.write_text("old")
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((str(src), str(dst), target.read_text()))  # the target is untouched until the rename
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    atomic_write_text(target, "new", fsync=True)
    assert seen == [(str(temp_path_for(target)), str(target), "old")]
    assert temp_path_for(target) == tmp_path / "twin.json.tmp"
    assert target.read_text() == "new"


def test_failure_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "config.yaml"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer died")
    assert target.read_text() == "old" and not temp_path_for(target).exists()
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})  # serialised first: nothing is written
    assert target.read_text() == "old" and not temp_path_for(target).exists()


def test_atomic_path_for_writers_that_open_the_file_themselves(tmp_path):
    target = tmp_path / "out" / "adapter.gguf"
    with atomic_path(target, fsync=True) as tmp:
        assert tmp.parent.is_dir() and tmp != target
        with open(tmp, "wb") as handle:
            handle.write(b"GGUF")
        assert not target.exists()
    assert target.read_bytes() == b"GGUF" and not tmp.exists()
