from __future__ import annotations

import os
from pathlib import Path

import pytest

from medopt.config import StoreConfig
from medopt.store import (
    ArtifactConflict,
    ArtifactCorrupted,
    ArtifactNotFound,
    ArtifactStore,
    LocalStore,
    StoreError,
    open_store,
    sha256_file,
)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def test_put_get_round_trip_with_manifest(store: LocalStore, tmp_path: Path) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(b"weights" * 1000)
    m = store.put_file("runs/r1/train/model.pt", src, kind="model", config={"a": 1}, metrics={"auc": 0.9},
                       parents=["runs/r1/data/dataset.npz"])
    assert m.sha256 == sha256_file(src) and m.size == 7000
    assert store.manifest("runs/r1/train/model.pt") == m
    assert store.get_bytes("runs/r1/train/model.pt") == src.read_bytes()
    out = store.get_file("runs/r1/train/model.pt", tmp_path / "copy.bin")
    assert out.read_bytes() == src.read_bytes()
    assert store.list("runs/r1") == ["runs/r1/train/model.pt"]
    assert isinstance(store, ArtifactStore)


def test_same_content_is_idempotent_different_content_refused(store: LocalStore) -> None:
    first = store.put_bytes("k/a.json", b"{}", kind="metrics")
    assert store.put_bytes("k/a.json", b"{}", kind="metrics") == first
    with pytest.raises(ArtifactConflict, match="refusing to overwrite"):
        store.put_bytes("k/a.json", b"{1}", kind="metrics")
    assert store.get_bytes("k/a.json") == b"{}"  # the original survived


def test_corruption_is_detected(store: LocalStore, tmp_path: Path) -> None:
    store.put_bytes("k/a.bin", b"0123456789", kind="blob")
    (store.root / "k/a.bin").write_bytes(b"0123456780")
    with pytest.raises(ArtifactCorrupted, match="corrupted"):
        store.get_bytes("k/a.bin")
    with pytest.raises(ArtifactCorrupted):
        store.get_file("k/a.bin", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    (store.root / "k/a.bin").unlink()
    with pytest.raises(ArtifactCorrupted, match="file is missing"):
        store.verify("k/a.bin")


def test_missing_and_invalid_keys(store: LocalStore, tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFound, match="not found"):
        store.get_bytes("nope")
    for bad in ("../escape", "/abs", "a//b", "a/./b", "x.manifest.json", ""):
        with pytest.raises(StoreError, match="invalid artifact key"):
            store.put_bytes(bad, b"x", kind="blob")
    with pytest.raises(StoreError, match="does not exist"):
        store.put_file("k/f", tmp_path / "missing", kind="blob")


def test_no_temp_files_left_and_atomic(store: LocalStore) -> None:
    store.put_bytes("a/b/c.txt", b"hello", kind="blob")
    leftovers = [p for p in store.root.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == []


def test_failed_write_leaves_no_artifact(store: LocalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "s"
    src.write_bytes(b"abc")

    def boom(*_a: object, **_k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        store.put_file("k/s", src, kind="blob")
    monkeypatch.undo()
    assert not store.exists("k/s") and list(store.root.rglob("*.tmp")) == []


def test_open_store_resolves_relative_root(tmp_path: Path) -> None:
    s = open_store(StoreConfig(root="arts"), base_dir=tmp_path)
    assert isinstance(s, LocalStore) and s.root == (tmp_path / "arts").resolve()
