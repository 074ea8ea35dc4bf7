import json

import pytest

from bench.store.artifacts import MANIFEST, ArtifactStore


def writer(calls: list, content: str = "weights"):
    def build(out):
        calls.append(out)
        (out / "model.bin").write_text(content)
        return {"note": content}

    return build


def test_build_once_then_reuse(tmp_path):
    store, calls = ArtifactStore(tmp_path), []
    a = store.get_or_build("teacher", {"lr": 1}, [], writer(calls))
    b = store.get_or_build("teacher", {"lr": 1}, [], writer(calls))
    assert len(calls) == 1 and not a.reused and b.reused and a.path == b.path
    manifest = json.loads((a.path / MANIFEST).read_text())
    assert manifest["info"] == {"note": "weights"} and set(manifest["files"]) == {"model.bin"}


def test_spec_change_rebuilds_only_dependents(tmp_path):
    store, calls = ArtifactStore(tmp_path), []
    t1 = store.get_or_build("teacher", {"lr": 1}, [], writer(calls))
    s1 = store.get_or_build("student", {"layers": [0]}, [t1], writer(calls))
    s2 = store.get_or_build("student", {"layers": [1]}, [t1], writer(calls))
    t2 = store.get_or_build("teacher", {"lr": 2}, [], writer(calls))
    s3 = store.get_or_build("student", {"layers": [0]}, [t2], writer(calls))
    assert len({s1.key, s2.key, s3.key}) == 3 and t1.key != t2.key
    assert store.get_or_build("student", {"layers": [0]}, [t1], writer(calls)).reused
    assert len(calls) == 5


def test_failed_build_leaves_nothing(tmp_path):
    store = ArtifactStore(tmp_path)

    def boom(out):
        (out / "half.bin").write_text("x")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        store.get_or_build("teacher", {}, [], boom)
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".") or p.name.startswith(".tmp")] == []
    calls = []
    assert not store.get_or_build("teacher", {}, [], writer(calls)).reused and len(calls) == 1


def test_unfinished_dir_without_manifest_is_rebuilt(tmp_path):
    store, calls = ArtifactStore(tmp_path), []
    key = store.key("teacher", {}, [])
    (tmp_path / f"teacher-{key}").mkdir()
    (tmp_path / f"teacher-{key}" / "model.bin").write_text("partial")
    art = store.get_or_build("teacher", {}, [], writer(calls))
    assert len(calls) == 1 and (art.path / "model.bin").read_text() == "weights"


def test_corrupted_file_is_detected_and_rebuilt(tmp_path, caplog):
    store, calls = ArtifactStore(tmp_path), []
    art = store.get_or_build("teacher", {}, [], writer(calls))
    (art.path / "model.bin").write_text("truncat")
    again = store.get_or_build("teacher", {}, [], writer(calls))
    assert len(calls) == 2 and not again.reused
    assert "model.bin does not match its recorded hash" in caplog.text
