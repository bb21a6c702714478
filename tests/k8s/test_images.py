"""The image recipes: every Dockerfile pins its bases by digest, ends as a non-root uid and bakes in no secrets; the
predictor image installs only serving/requirements.lock; scripts/kind-up.sh pins what it installs and refuses to
run without MinIO credentials; the slim predictor's Python layer is a small fraction of the full one."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

REPO = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", ".venv", "node_modules", "shared"}
DOCKERFILES = sorted(p for p in REPO.rglob("Dockerfile*")
                     if p.is_file() and not SKIP_DIRS & set(p.relative_to(REPO).parts))
PINNED = re.compile(r"^[a-z0-9][a-z0-9._/-]*(:\d+)?/?[a-z0-9._/-]*:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}$")
SECRET_VALUE = re.compile(r"AKIA[0-9A-Z]{16}|ghp_[A-Za-z0-9]{20,}|xox[bp]-|-----BEGIN [A-Z ]*PRIVATE KEY|"
                          r"(?i:(password|passwd|secret|token|api[_-]?key)\s*=\s*\S)")
SECRET_KEY = re.compile(r"(?i)(password|passwd|secret|token|credential|access_key|api_?key)")
KIND_UP = REPO / "scripts" / "kind-up.sh"
IMAGES = ("medopt", "medopt-cuda", "medopt-serve")


def _instructions(path: Path) -> list[dict]:
    with path.open("rb") as f:  # a file object: the parser reads a path not named "Dockerfile" as a directory
        return [i for i in DockerfileParser(fileobj=f).structure if i["instruction"] != "COMMENT"]


def _stages(path: Path) -> list[list[dict]]:
    """Instructions grouped by stage, each group starting with its FROM."""
    stages: list[list[dict]] = []
    for ins in _instructions(path):
        if ins["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def _env_pairs(value: str) -> list[tuple[str, str]]:
    words = shlex.split(value)
    if len(words) == 2 and "=" not in words[0]:  # legacy "ENV KEY value"
        return [(words[0], words[1])]
    return [tuple(w.split("=", 1)) if "=" in w else (w, "") for w in words]  # type: ignore[misc]


def test_the_three_images_are_there() -> None:
    assert {p.relative_to(REPO).as_posix() for p in DOCKERFILES} >= {"Dockerfile", "Dockerfile.cuda",
                                                                    "serving/Dockerfile"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_base_is_pinned_by_digest_or_an_earlier_stage(path: Path) -> None:
    stages: list[str] = []
    for ins in _instructions(path):
        if ins["instruction"] != "FROM":
            continue
        words = [w for w in ins["value"].split() if not w.startswith("--")]
        image = words[0]
        assert image in stages or PINNED.match(image), f"{path.name}: FROM {image} is not name:tag@sha256:<digest>"
        if len(words) == 3 and words[1].lower() == "as":
            stages.append(words[2])


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_final_stage_runs_as_a_numeric_non_root_user(path: Path) -> None:
    users = [i["value"].strip() for i in _stages(path)[-1] if i["instruction"] == "USER"]
    assert users, f"{path.name}: the final stage sets no USER (it would run as root)"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"{path.name}: USER {users[-1]} is not a numeric non-root uid"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_secrets_in_env_arg_or_label(path: Path) -> None:
    for ins in _instructions(path):
        if ins["instruction"] not in ("ENV", "ARG", "LABEL"):
            continue
        for key, value in _env_pairs(ins["value"]):
            assert not SECRET_KEY.search(key), f"{path.name}: {ins['instruction']} {key} looks like a secret"
            assert not SECRET_VALUE.search(f"{key}={value}"), f"{path.name}: {ins['instruction']} holds a secret"


def test_secret_check_catches_secrets(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM scratch\nENV AWS_SECRET_ACCESS_KEY=abc\nLABEL note=AKIAABCDEFGHIJKLMNOP\n")
    pairs = [p for i in _instructions(bad) if i["instruction"] != "FROM" for p in _env_pairs(i["value"])]
    assert SECRET_KEY.search(pairs[0][0]) and SECRET_VALUE.search(f"{pairs[1][0]}={pairs[1][1]}")


def test_predictor_installs_only_the_serving_lock_and_no_torch() -> None:
    ins = _instructions(REPO / "serving" / "Dockerfile")
    runs = [i["value"] for i in ins if i["instruction"] == "RUN"]
    installs = [seg.strip() for r in runs for seg in re.split(r"&&|;", r) if "pip install" in seg]
    assert installs, "serving/Dockerfile installs nothing"
    for cmd in installs:
        words = shlex.split(cmd)
        assert ("-r" in words and words[words.index("-r") + 1] == "serving-requirements.lock") or \
               ("--no-deps" in words and words[-1] == "."), f"serving/Dockerfile: unexpected install '{cmd}'"
    copies = [i["value"] for i in ins if i["instruction"] == "COPY"]
    assert "serving/requirements.lock ./serving-requirements.lock" in copies
    assert not any("requirements.lock" in c and not c.startswith("serving/") for c in copies)
    assert not any(re.search(r"\btorch\b", r) and "find_spec" not in r for r in runs)
    assert ins[-1]["instruction"] == "ENTRYPOINT" and json.loads(ins[-1]["value"]) == ["python", "-m", "medopt.serve"]


def test_cpu_image_takes_torch_from_the_cpu_index() -> None:
    runs = " ".join(i["value"] for i in _instructions(REPO / "Dockerfile") if i["instruction"] == "RUN")
    assert "--index-url https://download.pytorch.org/whl/cpu -r torch-cpu.txt" in runs
    assert "grep -E '^(torch|torchvision)==' requirements.lock > torch-cpu.txt" in runs


def _kind_up(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("MINIO_USER", "MINIO_PASSWORD")}
    # PATH without docker/kind/kubectl/helm: a dry run must not need them
    clean["PATH"] = "/usr/bin:/bin"
    return subprocess.run(["bash", str(KIND_UP), *args], capture_output=True, text=True, timeout=30,
                          env={**clean, **env}, cwd=REPO)


def test_kind_up_is_valid_bash() -> None:
    assert subprocess.run(["bash", "-n", str(KIND_UP)], capture_output=True, timeout=30).returncode == 0


def test_kind_up_dry_run_prints_the_pinned_plan() -> None:
    result = _kind_up("--dry-run", MINIO_USER="test-user", MINIO_PASSWORD="test-pass-123")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    script = KIND_UP.read_text()
    for var in ("CERT_MANAGER_VERSION", "KSERVE_VERSION", "KUBERAY_VERSION", "KFP_VERSION"):
        version = re.search(rf'^{var}="([^"]+)"', script, re.M).group(1)  # type: ignore[union-attr]
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", version) and version in out, var
    assert re.search(r"--image kindest/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", out)
    for image in IMAGES:
        assert f"kind load docker-image ghcr.io/medopt/{image}:0.1.0 --name medopt" in out.splitlines()
    assert "kserve.controller.deploymentMode=RawDeployment" in out
    assert "kubectl apply -k k8s/overlays/local-kind" in out and "helm install medopt helm/medopt -n medopt" in out
    for ns in ("medopt", "kubeflow"):
        assert f"kubectl create secret generic medopt-s3 -n {ns} --from-literal=AWS_ACCESS_KEY_ID=test-user" in out
    assert "test-pass-123" not in out


def test_kind_up_refuses_without_minio_password() -> None:
    result = _kind_up("--dry-run", MINIO_USER="test-user")
    assert result.returncode != 0 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "MINIO_PASSWORD" in result.stderr


def test_slim_python_layer_is_under_a_quarter_of_the_full_one() -> None:
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "image_size.py"), "--json",
                             "serving/requirements.lock", "requirements.lock"], capture_output=True, text=True,
                            timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    sizes = json.loads(result.stdout)
    slim, full = sizes["serving/requirements.lock"], sizes["requirements.lock"]
    assert slim["missing"] == [] and slim["bytes"] > 0
    assert slim["bytes"] < 0.25 * full["bytes"], (slim["bytes"], full["bytes"])
