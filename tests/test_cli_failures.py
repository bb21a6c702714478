"""Each `medopt` command driven into its typical failure: a non-zero exit, one readable line on stderr, no traceback.

The cases fail before any training (config, preflight, store look-ups), so each takes seconds; one case runs the
installed console script in a fresh interpreter to cover the real entry point.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from medopt.cli import main

TINY = ["--set", "model.name=tiny_cnn", "--set", "data.synthetic.num_samples=40", "--set", "train.epochs=1"]
PREFIX = "medopt: error: "


def _one_error_line(code: int, out: str, err: str, expected: str) -> None:
    assert code == 1, (code, out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(PREFIX) and expected in lines[0], lines[0]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder: the default local store and run folders land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", *TINY, "--set", "train.device=cuda:7"], "train.device"),
        (["train", *TINY, "--set", "train.epocs=3"], "train.epocs: unknown key"),
        (["run", "--runner", "inprocess", *TINY, "--set", "compress.enabled=true", "--set", "compress.recipes=[nope]"],
         "unknown compression recipe 'nope'"),
        (["store", "get", "runs/nope/x", "out"], "artifact 'runs/nope/x' not found"),
        (["store", "put", "runs/r/model.pt", "/no/such/model.pt", "--kind", "model"], "/no/such/model.pt"),
        (["evaluate", "--model", "nope", "--dataset", "nope"], "artifact 'nope' not found"),
        (["serve", "runs/nope/model.onnx", "--port", "18731", "--grpc-port", "18732"],
         "artifact 'runs/nope/model.onnx' not found"),
        (["run", "--runner", "inprocess", *TINY, "--set", "bench.enabled=true", "--set", "bench.links=[lan, moon]"],
         "moon"),
        (["run", "--runner", "inprocess", *TINY, "--set", "bench.enabled=true", "--set", "bench.split_at=layer9"],
         "bench.split_at 'layer9' is not a layer of tiny_cnn"),
        (["run", "--runner", "inprocess", *TINY, "--set", "bench.rate_rps=-2"], "bench.rate_rps"),
    ],
    ids=["bad-device-name", "unknown-set-field", "unknown-recipe", "store-get-unknown-key", "store-put-missing-file",
         "evaluate-unknown-key", "serve-unknown-artifact", "bench-unknown-link", "bench-unknown-split-layer",
         "bench-negative-rate"],
)
def test_command_fails_in_one_line(argv: list[str], expected: str, in_tmp: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = main(argv)
    out = capsys.readouterr()
    _one_error_line(code, out.out, out.err, expected)


def test_unavailable_device_fails_before_the_data_step(in_tmp: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a machine with a GPU
    code = main(["train", *TINY, "--set", "train.device=cuda"])
    out = capsys.readouterr()
    _one_error_line(code, out.out, out.err, "no CUDA device is available")
    assert not (in_tmp / "runs").exists()


def test_more_ray_workers_than_cores_fails_before_ray_starts(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        pytest.skip("a Ray session from another test is running; the check is for the head this run would start")
    code = main(["train", *TINY, "--set", "train.backend=ray", "--set", "train.num_workers=64",
                 "--set", "train.ray_num_cpus=2"])
    out = capsys.readouterr()
    _one_error_line(code, out.out, out.err, "train.num_workers=64 needs 64 CPUs")
    assert not sys.modules["ray"].is_initialized()


@pytest.mark.parametrize("content", [b"\x00garbage" * 300, b"PK\x03\x04 a truncated zip"], ids=["garbage", "bad-zip"])
def test_unreadable_data_file(content: bytes, in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = in_tmp / "bad.npz"
    bad.write_bytes(content)
    code = main(["data", "inspect", "--set", "data.source=medmnist", "--set", f"data.path={bad}"])
    out = capsys.readouterr()
    _one_error_line(code, out.out, out.err, f"{bad}: not a readable npz file")


def test_console_script_prints_one_line(in_tmp: Path) -> None:
    script = Path(sys.executable).with_name("medopt")
    if not script.is_file():
        pytest.skip(f"no console script at {script}")
    done = subprocess.run([str(script), "store", "get", "runs/nope/x", "out"], capture_output=True, text=True,
                          timeout=120, cwd=in_tmp)
    _one_error_line(done.returncode, done.stdout, done.stderr, "artifact 'runs/nope/x' not found")


def test_serving_an_artifact_that_is_not_a_model_fails_before_the_server_starts(
        in_tmp: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import medopt.serve.__main__ as serve_main

    def kserve_started() -> None:
        raise AssertionError("kserve was imported before the artifact was checked")

    monkeypatch.setattr(serve_main, "import_kserve", kserve_started)
    notes = in_tmp / "notes.txt"
    notes.write_text("not a model")
    assert main(["store", "put", "runs/r/notes.txt", str(notes), "--kind", "text/plain"]) == 0
    capsys.readouterr()
    code = main(["serve", "runs/r/notes.txt", "--port", "18733", "--grpc-port", "18734"])
    out = capsys.readouterr()
    _one_error_line(code, out.out, out.err, "is a 'text/plain', not a model")


@pytest.mark.parametrize(("spec", "expected"), [
    ("target: {url: 'http://127.0.0.1:1'}\nrat: 3\n", "at rat: unknown key"),
    ("target: {url: 'http://127.0.0.1:1'}\narrival: {kind: poisson, rate: -1}\n", "at arrival.rate"),
    ("target: {url: 'http://127.0.0.1:1', protocol: raw}\n", "payload_file"),
], ids=["unknown-key", "negative-rate", "raw-without-payload"])
def test_bench_load_spec_errors_are_one_line(spec: str, expected: str, in_tmp: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (in_tmp / "spec.yaml").write_text(spec)
    code = main(["bench", "load", str(in_tmp / "spec.yaml")])
    out = capsys.readouterr()
    _one_error_line(code, out.out, out.err, expected)


def test_bench_links_file_with_zero_bandwidth_is_one_line(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (in_tmp / "links.yaml").write_text("slow:\n  rtt_ms: 10\n  rate_mbit: 0\n")
    code = main(["bench", "links", "--file", str(in_tmp / "links.yaml")])
    out = capsys.readouterr()
    _one_error_line(code, out.out, out.err, "rate_mbit")


_PLAN_PROFILE = ('{"profiles": [{"model": "m", "cloud": {"service_ms": {"1": [3.0]}, "cold_start_s": [1.0]}, '
                 '"edge_ms": [10.0], "image_bytes": 1000, "response_bytes": 10}]}')


@pytest.mark.parametrize(("args", "expected"), [
    (["--link", "moon", "--slo-p99-ms", "200", "--profiles", "p.json"], "unknown link profile 'moon'"),
    (["--link", "4g", "--slo-p99-ms", "0", "--profiles", "p.json"], "--slo-p99-ms must be > 0"),
    (["--link", "4g", "--slo-p99-ms", "-5", "--profiles", "p.json"], "--slo-p99-ms must be > 0"),
    (["--link", "4g", "--slo-p99-ms", "200", "--profiles", "missing.json"], "cannot read placement profiles"),
    (["--link", "4g", "--slo-p99-ms", "200", "--profiles", "bad.json"], "not valid JSON"),
    (["--link", "4g", "--slo-p99-ms", "200"], "needs --profiles"),
    (["--link", "4g", "--slo-p99-ms", "200", "--profiles", "p.json", "--prices", "missing.yaml"],
     "cannot read price file"),
], ids=["unknown-link", "zero-slo", "negative-slo", "missing-profiles", "bad-profiles", "no-profiles",
        "missing-prices"])
def test_bench_plan_errors_are_one_line(args: list[str], expected: str, in_tmp: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (in_tmp / "p.json").write_text(_PLAN_PROFILE)
    (in_tmp / "bad.json").write_text("{not json")
    code = main(["bench", "plan", *args])
    out = capsys.readouterr()
    _one_error_line(code, out.out, out.err, expected)
