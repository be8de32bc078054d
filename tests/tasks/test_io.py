import json

import pytest

from tasks.io import atomic_dir, read_json, write_json, write_manifest
from transferlab.errors import DataError


def test_atomic_dir_replaces_on_success(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with atomic_dir(final) as tmp:
        (tmp / "new.txt").write_text("new")
        assert not (final / "new.txt").exists()
    assert (final / "new.txt").read_text() == "new"
    assert not (final / "old.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_dir_keeps_previous_output_on_failure(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("crash")
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []


def test_manifest_records_payload_and_input_hashes(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("x")
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"abc")
    m = write_manifest(folder, "thing", [src.name], root=tmp_path, n=3)
    saved = json.loads((folder / "manifest.json").read_text())
    assert saved == json.loads(json.dumps(m))
    assert saved["kind"] == "thing" and saved["n"] == 3
    assert set(saved["files"]) == {"a.bin"}
    assert len(saved["inputs"]["in.txt"]) == 64


def test_read_json_errors_are_one_clear_sentence(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_json(tmp_path / "missing.json", "the report")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(DataError, match="corrupt"):
        read_json(bad, "the report")
    write_json(tmp_path / "ok.json", {"a": 1})
    assert read_json(tmp_path / "ok.json", "x") == {"a": 1}
