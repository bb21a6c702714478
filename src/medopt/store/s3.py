"""S3/MinIO artifact store: LocalStore's layout, hashing and refuse-to-overwrite rules, in a bucket.

Layout: ``s3://<bucket>/<prefix>/<key>`` holds the bytes and ``<key>.manifest.json`` the manifest. The manifest is
written last, so an object without one is invisible. Uploads stream from disk (multipart above ``part_size``) and hash
the bytes as they are sent; downloads land in a temp file beside the destination and are renamed into place only once
their sha256 matches the manifest. Credentials come from env vars or a mounted secret, never from the config file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import certifi
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.helpers import MIN_PART_SIZE
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

from medopt.atomic import atomic_open
from medopt.config import StoreConfig
from medopt.store.base import (
    ArtifactCorrupted,
    ArtifactNotFound,
    StoreError,
    ensure_same_content,
    validate_key,
)
from medopt.store.local import MANIFEST_SUFFIX
from medopt.store.manifest import CHUNK, Manifest, sha256_file

log = logging.getLogger(__name__)

DEFAULT_PART_SIZE = 16 * 1024 * 1024
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 120.0
ENV_KEY_PAIRS = (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), ("MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"))
SECRET_FIELDS = ("access_key", "secret_key")
_AUTH_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken",
                         "ExpiredToken", "InvalidClientTokenId"})
_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchObject"})


class CredentialsError(StoreError):
    """No usable S3 credentials: the message says which env vars or secret file to set."""


class StoreUnreachable(StoreError):
    """The S3 endpoint could not be reached (refused, unknown host, timeout, TLS mismatch)."""


class StoreAuthError(StoreError):
    """The S3 server rejected the credentials."""


class BucketNotFound(StoreError):
    """The configured bucket does not exist and may not be created."""


@dataclass(frozen=True)
class S3Credentials:
    """An access/secret key pair and where it came from (named in error messages, the secret never is)."""

    access_key: str
    secret_key: str = field(repr=False)
    source: str = "explicit"
    session_token: str | None = field(default=None, repr=False)


def _secret_from_folder(folder: Path) -> S3Credentials:
    values = {}
    for name in SECRET_FIELDS:
        path = folder / name
        if not path.is_file():
            raise CredentialsError(f"store.credentials_file folder {folder} has no file '{name}' "
                                   f"(expected files {' and '.join(SECRET_FIELDS)}, as a Kubernetes secret volume)")
        values[name] = path.read_text().strip()
        if not values[name]:
            raise CredentialsError(f"store.credentials_file {path} is empty")
    return S3Credentials(values["access_key"], values["secret_key"], source=f"secret folder {folder}")


def _secret_from_file(path: Path) -> S3Credentials:
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or name not in SECRET_FIELDS or not value:
            raise CredentialsError(f"store.credentials_file {path} line {number}: expected 'access_key=...' or "
                                   "'secret_key=...' with a non-empty value")
        values[name] = value
    missing = [n for n in SECRET_FIELDS if n not in values]
    if missing:
        raise CredentialsError(f"store.credentials_file {path} has no {' or '.join(missing)} line")
    return S3Credentials(values["access_key"], values["secret_key"], source=f"secret file {path}")


def load_credentials(cfg: StoreConfig, environ: Mapping[str, str] | None = None) -> S3Credentials:
    """Credentials from ``store.credentials_file`` when set, else the environment; never from the config itself.

    The secret is either a file of ``access_key=...`` / ``secret_key=...`` lines (``#`` comments allowed) or a folder
    holding files ``access_key`` and ``secret_key`` (a Kubernetes secret mounted as a volume). From the environment,
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` win over ``MINIO_ACCESS_KEY``/``MINIO_SECRET_KEY``;
    ``AWS_SESSION_TOKEN`` is passed along when set.
    """
    env = os.environ if environ is None else environ
    if cfg.credentials_file:
        path = Path(cfg.credentials_file).expanduser()
        if path.is_dir():
            return _secret_from_folder(path)
        if path.is_file():
            return _secret_from_file(path)
        raise CredentialsError(f"store.credentials_file {path} does not exist")
    for access_var, secret_var in ENV_KEY_PAIRS:
        access, secret = env.get(access_var), env.get(secret_var)
        if access and secret:
            return S3Credentials(access, secret, source=f"env {access_var}", session_token=env.get("AWS_SESSION_TOKEN"))
        if access or secret:
            have, lack = (access_var, secret_var) if access else (secret_var, access_var)
            raise CredentialsError(f"{have} is set but {lack} is not; set both")
    raise CredentialsError(
        f"no S3 credentials for endpoint {cfg.endpoint}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or "
        "MINIO_ACCESS_KEY and MINIO_SECRET_KEY), or point store.credentials_file at a mounted secret"
    )


def _http_client(connect_timeout: float) -> urllib3.PoolManager:
    """Short connect timeout and few retries, so a wrong endpoint fails in seconds instead of minutes."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout, read=READ_TIMEOUT_S),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(total=3, connect=1, read=1, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )


def _unreachable_reason(exc: BaseException | None) -> str:
    """A short human reason from urllib3's wrapped connection error."""
    chain = exc
    while chain is not None:
        if isinstance(chain, ConnectionRefusedError):
            return "connection refused"
        chain = chain.__cause__ or chain.__context__
    if isinstance(exc, NameResolutionError):
        return "host name not found"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return "TLS handshake failed (is store.secure right for this endpoint?)"
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return "connection timed out"
    if isinstance(exc, NewConnectionError):
        return "connection failed"
    return " ".join(str(exc).split())[:200]


def _clean_prefix(prefix: str) -> str:
    """The key prefix without surrounding slashes; it must itself be a valid key (or empty)."""
    cleaned = prefix.strip("/")
    try:
        return validate_key(cleaned) if cleaned else ""
    except StoreError:
        raise StoreError(f"store.prefix {prefix!r} is invalid: use letters, digits and ._=+- "
                         "separated by '/'") from None


class _HashingReader:
    """Wraps a binary stream; hashes and counts exactly the bytes the uploader reads."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream, self._hash, self.count = stream, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        block = self._stream.read(size)
        self._hash.update(block)
        self.count += len(block)
        return block

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class S3Store:
    """An ArtifactStore over an S3/MinIO bucket; opening it checks the endpoint, the credentials and the bucket."""

    def __init__(self, cfg: StoreConfig, *, part_size: int = DEFAULT_PART_SIZE,
                 credentials: S3Credentials | None = None, connect_timeout: float = CONNECT_TIMEOUT_S) -> None:
        if not cfg.endpoint or not cfg.bucket:
            raise StoreError("store.endpoint and store.bucket are required for an S3 store")
        if part_size < MIN_PART_SIZE:
            raise StoreError(f"S3 part_size {part_size} is below the S3 minimum of {MIN_PART_SIZE} bytes (5 MiB)")
        self.endpoint, self.bucket, self.part_size = cfg.endpoint, cfg.bucket, part_size
        self.prefix = _clean_prefix(cfg.prefix)
        self.uri = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self._no_bucket = f"bucket '{self.bucket}' does not exist at {self.endpoint}; " \
                          "set store.create_bucket=true or create it"
        self._creds = credentials or load_credentials(cfg)
        try:
            self._client = Minio(cfg.endpoint, access_key=self._creds.access_key, secret_key=self._creds.secret_key,
                                 session_token=self._creds.session_token, secure=cfg.secure, region=cfg.region,
                                 http_client=_http_client(connect_timeout))
        except ValueError as exc:
            raise StoreError(f"store.endpoint {cfg.endpoint!r} is invalid ({exc}); use host:port without a "
                             "scheme, e.g. minio.medopt:9000") from None
        self._ensure_bucket(cfg.create_bucket, cfg.region)

    # ------------------------------------------------------------------------------------------------ plumbing
    @contextlib.contextmanager
    def _s3_errors(self, what: str) -> Iterator[None]:
        """Turn minio/urllib3 failures into one-line StoreErrors that name the endpoint and the action."""
        try:
            yield
        except S3Error as exc:
            if exc.code in _AUTH_CODES:
                raise StoreAuthError(f"S3 rejected the credentials for endpoint {self.endpoint}: {exc.code} "
                                     f"(credentials from {self._creds.source})") from None
            if exc.code == "NoSuchBucket":
                raise BucketNotFound(self._no_bucket) from None
            raise StoreError(f"S3 error while {what} at {self.uri}: {exc.code}: {exc.message}") from None
        except MaxRetryError as exc:
            raise StoreUnreachable(f"cannot reach S3 endpoint {self.endpoint}: "
                                   f"{_unreachable_reason(exc.reason)}") from None
        except ServerError as exc:
            raise StoreError(f"S3 endpoint {self.endpoint} failed while {what}: HTTP {exc.status_code}") from None
        except InvalidResponseError as exc:
            detail = " ".join(str(exc).split())[:200]
            raise StoreError(f"S3 endpoint {self.endpoint} gave a non-S3 answer while {what} "
                             f"(is store.endpoint an S3 server?): {detail}") from None
        except urllib3.exceptions.HTTPError as exc:
            raise StoreUnreachable(f"connection to S3 endpoint {self.endpoint} failed while {what}: "
                                   f"{_unreachable_reason(exc)}") from None

    def _ensure_bucket(self, create: bool, region: str | None) -> None:
        with self._s3_errors(f"checking bucket '{self.bucket}'"):
            if self._client.bucket_exists(self.bucket):
                return
            if not create:
                raise BucketNotFound(self._no_bucket)
            try:
                self._client.make_bucket(self.bucket, location=region)
            except ValueError:
                raise StoreError(f"store.bucket {self.bucket!r} is not a valid S3 bucket name") from None
            except S3Error as exc:
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
            log.info("created bucket %s at %s", self.bucket, self.endpoint)

    def _name(self, key: str) -> str:
        key = validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _manifest_name(self, key: str) -> str:
        return self._name(key) + MANIFEST_SUFFIX

    @contextlib.contextmanager
    def _object(self, name: str, what: str) -> Iterator[Any]:
        """The object's streaming HTTP response, or None when there is no such object."""
        with self._s3_errors(what):
            try:
                response = self._client.get_object(self.bucket, name)
            except S3Error as exc:
                if exc.code not in _MISSING_CODES:
                    raise
                response = None
            try:
                yield response
            finally:
                if response is not None:
                    response.close()
                    response.release_conn()

    @staticmethod
    def _check_sha(key: str, manifest: Manifest, actual: str) -> None:
        if actual != manifest.sha256:
            raise ArtifactCorrupted(
                f"artifact '{key}' is corrupted: sha256 {actual[:12]} != manifest {manifest.sha256[:12]}"
            )

    def _same_or_conflict(self, key: str, sha: str) -> Manifest:
        return ensure_same_content(self.manifest(key), sha)

    def _upload(self, key: str, stream: BinaryIO, size: int, fields: dict[str, Any]) -> Manifest:
        """Stream the bytes up (hashing them on the way), then write the manifest last."""
        reader = _HashingReader(stream)
        with self._s3_errors(f"uploading '{key}'"):
            try:
                self._client.put_object(self.bucket, self._name(key), reader, size, part_size=self.part_size)
            except OSError as exc:
                raise StoreError(f"cannot store '{key}': reading the source failed: {exc}") from None
            manifest = Manifest(key=key, sha256=reader.hexdigest(), size=reader.count, **fields)
            body = manifest.to_json().encode()
            self._client.put_object(self.bucket, self._manifest_name(key), io.BytesIO(body), len(body),
                                    content_type="application/json")
        log.debug("stored %s/%s (%d bytes)", self.uri, key, manifest.size)
        return manifest

    # ---------------------------------------------------------------------------------------------- protocol
    def put_file(self, key: str, src: Path, *, kind: str, config: dict[str, Any] | None = None,
                 metrics: dict[str, Any] | None = None, parents: tuple[str, ...] | list[str] = (),
                 meta: dict[str, Any] | None = None) -> Manifest:
        validate_key(key)
        src = Path(src)
        if not src.is_file():
            raise StoreError(f"cannot store '{key}': source file {src} does not exist")
        if self.exists(key):
            return self._same_or_conflict(key, sha256_file(src))
        fields = dict(kind=kind, config=config, metrics=metrics, parents=tuple(parents), meta=meta)
        with open(src, "rb") as f:
            return self._upload(key, f, os.fstat(f.fileno()).st_size, fields)

    def put_bytes(self, key: str, data: bytes, *, kind: str, **kwargs: Any) -> Manifest:
        """Same keyword arguments as put_file (config, metrics, parents, meta)."""
        validate_key(key)
        if self.exists(key):
            return self._same_or_conflict(key, hashlib.sha256(data).hexdigest())
        fields = {"kind": kind, "config": None, "metrics": None, "meta": None, **kwargs}
        fields["parents"] = tuple(fields.get("parents", ()))
        return self._upload(key, io.BytesIO(data), len(data), fields)

    def manifest(self, key: str) -> Manifest:
        with self._object(self._manifest_name(key), f"reading the manifest of '{key}'") as response:
            if response is None:
                raise ArtifactNotFound(f"artifact '{key}' not found in {self.uri}")
            text = response.read().decode("utf-8", errors="replace")
        try:
            return Manifest.from_json(text)
        except (ValueError, TypeError) as exc:
            raise ArtifactCorrupted(f"manifest of '{key}' is unreadable: {exc}") from None

    def _stream_verified(self, key: str, sink: BinaryIO | None) -> Manifest:
        """Stream the object into ``sink`` (or nowhere) and check its sha256 against the manifest."""
        manifest = self.manifest(key)
        digest = hashlib.sha256()
        with self._object(self._name(key), f"reading '{key}'") as response:
            if response is None:
                raise ArtifactCorrupted(f"artifact '{key}' has a manifest but its file is missing")
            for block in response.stream(CHUNK):
                digest.update(block)
                if sink is not None:
                    sink.write(block)
        self._check_sha(key, manifest, digest.hexdigest())
        return manifest

    def verify(self, key: str) -> Manifest:
        return self._stream_verified(key, None)

    def get_file(self, key: str, dest: Path) -> Path:
        """Download into a temp file beside ``dest``; rename it into place only once its sha256 matches."""
        validate_key(key)
        dest = Path(dest)
        with atomic_open(dest, "wb") as f:
            self._stream_verified(key, f)
        return dest

    def get_bytes(self, key: str) -> bytes:
        buffer = io.BytesIO()
        self._stream_verified(key, buffer)
        return buffer.getvalue()

    def exists(self, key: str) -> bool:
        name = self._manifest_name(key)
        with self._s3_errors(f"checking '{key}'"):
            try:
                self._client.stat_object(self.bucket, name)
            except S3Error as exc:
                if exc.code in _MISSING_CODES:
                    return False
                raise
        return True

    def list(self, prefix: str = "") -> list[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        with self._s3_errors(f"listing '{prefix}'"):
            names = [o.object_name for o in self._client.list_objects(self.bucket, prefix=base + prefix,
                                                                       recursive=True)]
        return sorted(n[len(base):-len(MANIFEST_SUFFIX)] for n in names if n and n.endswith(MANIFEST_SUFFIX))
