from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from medopt.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "/nonexistent.yaml"], "config file not found"),
        (["run", "--set", "train.epocs=3"], "train.epocs: unknown key"),
        (["config", "show", "--set", "model.transfer=sideways"], "model.transfer"),
        (["data", "inspect", "--set", "data.source=medmnist", "--set", "data.path=/no/such.npz"], "/no/such.npz"),
        (["run", "--set", "model.name=resnet19", "--runner", "inprocess", "--set", "data.synthetic.num_samples=40",
          "--set", "train.epochs=1"], "unknown model 'resnet19'"),
    ],
)
def test_bad_input_one_line_nonzero_exit(
    argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert expected in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_config_show_and_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", "--set", "train.epochs=7"]) == 0
    assert "epochs: 7" in capsys.readouterr().out
    assert main(["models"]) == 0
    names = capsys.readouterr().out.split()
    assert {"resnet18", "efficientnet_lite0", "tiny_cnn"} <= set(names)
    assert main(["compress", "recipes"]) == 0
    assert {"int8-static", "prune50+ft+int8", "fp32-onnx"} <= set(capsys.readouterr().out.split())


def test_console_script_is_importable_in_a_fresh_interpreter() -> None:
    out = subprocess.run([sys.executable, "-c", "import medopt; print(medopt.__version__)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0.1.0"
    assert "torch" not in subprocess.run(
        [sys.executable, "-c", "import sys, medopt, medopt.config; print(sorted(sys.modules))"],
        capture_output=True, text=True, check=True).stdout


def test_run_prints_metrics_and_report_only(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["run", "--runner", "inprocess", "--set", "model.name=tiny_cnn", "--set", "train.epochs=2",
                 "--set", "data.synthetic.num_samples=120", "--set", "evaluate.bootstrap_samples=20",
                 "--set", "evaluate.latency_runs=2"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "test metrics" in out.out and "report:" in out.out and "bacc" in out.out
    assert "MEDOPT_PROGRESS" not in out.out + out.err
    reports = list((tmp_path / "runs").glob("*/report.html"))
    assert len(reports) == 1 and "<html" in reports[0].read_text()[:200].lower()
