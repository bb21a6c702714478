"""S3Store against a real SeaweedFS S3 gateway on loopback (see tests/s3_server.py): no mocks."""

from __future__ import annotations

import hashlib
import io
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from medopt.config import StoreConfig
from medopt.store import (
    ArtifactConflict,
    ArtifactCorrupted,
    ArtifactNotFound,
    ArtifactStore,
    StoreError,
    open_store,
    sha256_file,
)
from medopt.store.s3 import (
    BucketNotFound,
    CredentialsError,
    S3Store,
    StoreAuthError,
    StoreUnreachable,
    load_credentials,
)

if TYPE_CHECKING:
    from s3_server import S3Server

pytestmark = pytest.mark.integration
MIB = 1024 * 1024


def store_cfg(server: S3Server, **kw: object) -> StoreConfig:
    values: dict[str, object] = dict(kind="s3", endpoint=server.endpoint, bucket=server.bucket,
                                     prefix=f"t-{uuid.uuid4().hex[:8]}", secure=False)
    values.update(kw)
    return StoreConfig(**values)


@pytest.fixture
def store(s3_env: S3Server) -> S3Store:
    return S3Store(store_cfg(s3_env))


def test_round_trip_with_manifest_and_layout(store: S3Store, s3_env: S3Server, tmp_path: Path) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(b"weights" * 1000)
    m = store.put_file("runs/r1/train/model.pt", src, kind="model", config={"a": 1}, metrics={"auc": 0.9},
                       parents=["runs/r1/data/dataset.npz"])
    assert m.sha256 == sha256_file(src) and m.size == 7000
    assert (m.kind, m.config, m.metrics, m.parents) == ("model", {"a": 1}, {"auc": 0.9}, ("runs/r1/data/dataset.npz",))
    assert store.manifest("runs/r1/train/model.pt") == m
    assert store.get_bytes("runs/r1/train/model.pt") == src.read_bytes()
    out = store.get_file("runs/r1/train/model.pt", tmp_path / "sub" / "copy.bin")
    assert out.read_bytes() == src.read_bytes()
    assert store.verify("runs/r1/train/model.pt") == m
    assert store.list("runs/r1") == ["runs/r1/train/model.pt"] and store.exists("runs/r1/train/model.pt")
    assert isinstance(store, ArtifactStore)
    assert store.uri == f"s3://{s3_env.bucket}/{store.prefix}"
    raw = s3_env.client()
    assert raw.stat_object(s3_env.bucket, f"{store.prefix}/runs/r1/train/model.pt").size == 7000
    body = raw.get_object(s3_env.bucket, f"{store.prefix}/runs/r1/train/model.pt.manifest.json").read()
    assert body.decode() == m.to_json()


def test_empty_file_and_put_bytes(store: S3Store, tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    m = store.put_file("k/empty", tmp_path / "empty", kind="blob")
    assert (m.size, m.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert store.get_bytes("k/empty") == b""
    assert store.put_bytes("k/b.json", b'{"x": 1}', kind="metrics").sha256 == hashlib.sha256(b'{"x": 1}').hexdigest()


def test_same_content_is_idempotent(store: S3Store, tmp_path: Path) -> None:
    first = store.put_bytes("k/a.json", b"{}", kind="metrics")
    assert store.put_bytes("k/a.json", b"{}", kind="metrics") == first
    (tmp_path / "same").write_bytes(b"{}")
    assert store.put_file("k/a.json", tmp_path / "same", kind="metrics") == first


def test_different_content_refused_original_intact(store: S3Store, tmp_path: Path) -> None:
    first = store.put_bytes("k/a.json", b"{}", kind="metrics")
    with pytest.raises(ArtifactConflict, match="refusing to overwrite"):
        store.put_bytes("k/a.json", b"{1}", kind="metrics")
    (tmp_path / "other").write_bytes(b"other")
    with pytest.raises(ArtifactConflict, match="Use a new key"):
        store.put_file("k/a.json", tmp_path / "other", kind="metrics")
    assert store.get_bytes("k/a.json") == b"{}" and store.manifest("k/a.json") == first


def test_corruption_detected_and_dest_never_written(store: S3Store, s3_env: S3Server, tmp_path: Path) -> None:
    store.put_bytes("k/a.bin", b"0123456789", kind="blob")
    raw, name = s3_env.client(), f"{store.prefix}/k/a.bin"
    raw.put_object(s3_env.bucket, name, io.BytesIO(b"0123456780"), 10)
    with pytest.raises(ArtifactCorrupted, match="corrupted"):
        store.get_bytes("k/a.bin")
    dest_dir = tmp_path / "out"
    with pytest.raises(ArtifactCorrupted, match="corrupted"):
        store.get_file("k/a.bin", dest_dir / "a.bin")
    assert os.listdir(dest_dir) == []  # neither the file nor its temp file
    raw.remove_object(s3_env.bucket, name)
    with pytest.raises(ArtifactCorrupted, match="file is missing"):
        store.verify("k/a.bin")


def test_missing_and_unreadable_manifest(store: S3Store, s3_env: S3Server) -> None:
    with pytest.raises(ArtifactNotFound, match="'k/none' not found in s3://"):
        store.manifest("k/none")
    assert not store.exists("k/none")
    raw = s3_env.client()
    raw.put_object(s3_env.bucket, f"{store.prefix}/k/bad.manifest.json", io.BytesIO(b"{nope"), 5)
    with pytest.raises(ArtifactCorrupted, match="manifest of 'k/bad' is unreadable"):
        store.manifest("k/bad")
    with pytest.raises(StoreError, match="invalid artifact key"):
        store.put_bytes("../escape", b"x", kind="blob")


def test_multipart_upload_of_a_file_larger_than_the_part_size(s3_env: S3Server, tmp_path: Path) -> None:
    store = S3Store(store_cfg(s3_env), part_size=5 * MIB)
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(12 * MIB + 123))
    m = store.put_file("big/ckpt.pt", src, kind="checkpoint")
    assert m.sha256 == sha256_file(src) and m.size == 12 * MIB + 123
    etag = s3_env.client().stat_object(s3_env.bucket, f"{store.prefix}/big/ckpt.pt").etag
    assert etag.endswith("-3")  # S3's multipart ETag: md5-of-part-md5s, dash, number of parts
    assert sha256_file(store.get_file("big/ckpt.pt", tmp_path / "back.bin")) == m.sha256
    with pytest.raises(StoreError, match="below the S3 minimum"):
        S3Store(store_cfg(s3_env), part_size=MIB)


def test_list_with_prefix_shows_only_manifested_artifacts(store: S3Store, s3_env: S3Server) -> None:
    for key in ("runs/a/x.bin", "runs/a/y/z.bin", "runs/ab/x.bin", "other/x.bin"):
        store.put_bytes(key, key.encode(), kind="blob")
    s3_env.client().put_object(s3_env.bucket, f"{store.prefix}/runs/a/half.bin", io.BytesIO(b"h"), 1)
    assert store.list("runs/a/") == ["runs/a/x.bin", "runs/a/y/z.bin"]
    assert store.list("runs/a") == ["runs/a/x.bin", "runs/a/y/z.bin", "runs/ab/x.bin"]
    assert store.list() == ["other/x.bin", "runs/a/x.bin", "runs/a/y/z.bin", "runs/ab/x.bin"]
    assert store.list("nothing/") == [] and not store.exists("runs/a/half.bin")
    other = S3Store(store_cfg(s3_env))  # another prefix in the same bucket sees none of it
    assert other.list() == []


def test_open_store_dispatches_s3(s3_env: S3Server) -> None:
    store = open_store(store_cfg(s3_env, prefix=""))
    assert isinstance(store, S3Store) and store.uri == f"s3://{s3_env.bucket}"


def test_wrong_endpoint_fails_fast_with_clear_message(s3_env: S3Server) -> None:
    start = time.monotonic()
    with pytest.raises(StoreUnreachable, match=r"^cannot reach S3 endpoint 127\.0\.0\.1:1: connection refused$"):
        S3Store(store_cfg(s3_env, endpoint="127.0.0.1:1"))
    assert time.monotonic() - start < 10
    with pytest.raises(StoreUnreachable, match="TLS handshake failed .*store.secure"):
        S3Store(store_cfg(s3_env, secure=True))
    with pytest.raises(StoreError, match="store.endpoint 'http://"):
        S3Store(store_cfg(s3_env, endpoint=f"http://{s3_env.endpoint}"))


def test_bad_credentials_named(s3_env: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    expected = f"S3 rejected the credentials for endpoint {s3_env.endpoint}: SignatureDoesNotMatch"
    with pytest.raises(StoreAuthError, match=expected):
        S3Store(store_cfg(s3_env))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    with pytest.raises(StoreAuthError, match="InvalidAccessKeyId .credentials from env AWS_ACCESS_KEY_ID"):
        S3Store(store_cfg(s3_env))


def test_missing_bucket_refused_or_created(s3_env: S3Server) -> None:
    name = f"medopt-new-{uuid.uuid4().hex[:8]}"
    with pytest.raises(BucketNotFound) as err:
        S3Store(store_cfg(s3_env, bucket=name))
    assert str(err.value) == (f"bucket '{name}' does not exist at {s3_env.endpoint}; "
                              "set store.create_bucket=true or create it")
    assert not s3_env.client().bucket_exists(name)
    store = S3Store(store_cfg(s3_env, bucket=name, create_bucket=True))
    assert s3_env.client().bucket_exists(name)
    assert store.put_bytes("a/b", b"x", kind="blob").size == 1 and store.get_bytes("a/b") == b"x"
    again = S3Store(store_cfg(s3_env, bucket=name, create_bucket=True, prefix=store.prefix))  # exists: fine
    assert again.list() == ["a/b"]


def test_credentials_from_secret_file_and_folder(s3_server: S3Server, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"):
        monkeypatch.delenv(var, raising=False)
    secret = tmp_path / "s3.secret"
    secret.write_text(f"# mounted secret\naccess_key={s3_server.access_key}\n\nsecret_key = {s3_server.secret_key}\n")
    store = S3Store(store_cfg(s3_server, credentials_file=str(secret)))
    assert store.put_bytes("a", b"1", kind="blob").size == 1
    folder = tmp_path / "k8s-secret"
    folder.mkdir()
    (folder / "access_key").write_text(s3_server.access_key + "\n")
    (folder / "secret_key").write_text(s3_server.secret_key + "\n")
    assert S3Store(store_cfg(s3_server, credentials_file=str(folder))).list() == []
    monkeypatch.setenv("MINIO_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("MINIO_SECRET_KEY", s3_server.secret_key)
    assert S3Store(store_cfg(s3_server, prefix=store.prefix)).list() == ["a"]


def test_credential_errors_say_what_to_set(tmp_path: Path) -> None:
    cfg = StoreConfig(kind="s3", endpoint="minio:9000", bucket="bkt")
    with pytest.raises(CredentialsError, match="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY .or MINIO_ACCESS_KEY"):
        load_credentials(cfg, environ={})
    with pytest.raises(CredentialsError, match="AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"):
        load_credentials(cfg, environ={"AWS_ACCESS_KEY_ID": "a"})
    creds = load_credentials(cfg, environ={"MINIO_ACCESS_KEY": "m", "MINIO_SECRET_KEY": "TOPSECRET"})
    assert (creds.access_key, creds.secret_key, creds.source) == ("m", "TOPSECRET", "env MINIO_ACCESS_KEY")
    assert "TOPSECRET" not in repr(creds)
    bad = tmp_path / "bad.secret"
    bad.write_text("access_key=a\npassword=b\n")
    with pytest.raises(CredentialsError, match="bad.secret line 2"):
        load_credentials(cfg.model_copy(update={"credentials_file": str(bad)}), environ={})
    bad.write_text("access_key=a\n")
    with pytest.raises(CredentialsError, match="has no secret_key line"):
        load_credentials(cfg.model_copy(update={"credentials_file": str(bad)}), environ={})
    with pytest.raises(CredentialsError, match="has no file 'access_key'"):
        load_credentials(cfg.model_copy(update={"credentials_file": str(tmp_path)}), environ={})
    with pytest.raises(CredentialsError, match="does not exist"):
        load_credentials(cfg.model_copy(update={"credentials_file": str(tmp_path / "no")}), environ={})


# ------------------------------------------------------------------------------------------------------ CLI
@pytest.fixture
def cli_main() -> Iterator[object]:
    """medopt.cli.main with the store sub-app registered (a no-op once medopt/cli.py registers it itself)."""
    from medopt import cli
    from medopt.store.cli import store_app

    added = not any(group.name == "store" for group in cli.app.registered_groups)
    if added:
        cli.app.add_typer(store_app, name="store")
    yield cli.main
    if added:
        cli.app.registered_groups[:] = [g for g in cli.app.registered_groups if g.typer_instance is not store_app]


def test_cli_put_ls_get(cli_main, s3_env: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = store_cfg(s3_env)
    sets = [f"--set=store.{k}={v}" for k, v in
            dict(kind="s3", endpoint=cfg.endpoint, bucket=cfg.bucket, prefix=cfg.prefix, secure="false").items()]
    src = tmp_path / "model.pt"
    src.write_bytes(b"m" * 300)
    assert cli_main(["store", "put", "runs/r/model.pt", str(src), "--kind", "model", *sets]) == 0
    assert "runs/r/model.pt: stored (300 bytes" in capsys.readouterr().out
    assert cli_main(["store", "ls", "runs/", *sets]) == 0
    assert capsys.readouterr().out.split() == ["runs/r/model.pt", "300", sha256_file(src)[:12], "model"]
    assert cli_main(["store", "get", "runs/r/model.pt", str(tmp_path / "dl"), *sets]) == 0
    assert "verified" in capsys.readouterr().out and (tmp_path / "dl").read_bytes() == src.read_bytes()
    assert cli_main(["store", "put", "runs/r/model.pt", str(src), "--kind", "model", *sets]) == 0
    assert "identical content" in capsys.readouterr().out
    src.write_bytes(b"different")
    assert cli_main(["store", "put", "runs/r/model.pt", str(src), "--kind", "model", *sets]) == 1
    err = capsys.readouterr().err.strip()
    assert "refusing to overwrite" in err and len(err.splitlines()) == 1


def test_cli_errors_are_one_line(cli_main, s3_env: S3Server, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    sets = ["--set=store.kind=s3", "--set=store.endpoint=127.0.0.1:1", f"--set=store.bucket={s3_env.bucket}",
            "--set=store.secure=false"]
    assert cli_main(["store", "ls", *sets]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "medopt: error: cannot reach S3 endpoint 127.0.0.1:1: connection refused"
    ok = [s.replace("127.0.0.1:1", s3_env.endpoint) for s in sets]
    assert cli_main(["store", "get", "no/such", str(tmp_path / "never"), *ok]) == 1
    assert "artifact 'no/such' not found" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
