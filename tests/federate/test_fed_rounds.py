import json
from types import SimpleNamespace

from medopt.federate.rounds import RoundRecorder, one_line, round_table
from medopt.pipeline.step_list import run_step
from medopt.pipeline.steps import round_event


def test_one_line_keeps_the_last_line_of_a_traceback() -> None:
    tb = "Traceback (most recent call last):\n  File 'x.py', line 1\n\nRuntimeError: hospital 1 is down\n"
    assert one_line(tb) == "RuntimeError: hospital 1 is down"
    assert len(one_line("x" * 500)) == 160


def test_recorder_maps_nodes_to_clients_and_sums_bytes() -> None:
    seen = []
    rec = RoundRecorder(seen.append)
    rec.start(1)
    rec.traffic(111, sent=1000)
    rec.traffic(111, received=400)
    rec.traffic(222, sent=1000, received=300)
    rec.client_metrics(111, {"client": 0.0, "train_loss": 0.5}, "fit_")
    rec.failure("Traceback...\nValueError: boom")
    rec.note(test_bacc=0.75)
    record = rec.finish()
    assert seen == [record]
    assert record["clients"]["0"] == {"fit_train_loss": 0.5, "bytes_sent": 1000.0, "bytes_received": 400.0}
    assert record["clients"]["222"]["bytes_received"] == 300.0
    assert record["sent_mb"] == 0.002 and record["received_mb"] == 0.0007
    assert record["failures"] == ["ValueError: boom"]
    table = round_table([record])
    assert "test_bacc" in table.splitlines()[0] and "0.7500" in table.splitlines()[1]
    event = round_event(record, rounds=3)
    assert event["failures"] == 1 and event["failure"] == "ValueError: boom" and event["rounds"] == 3
    json.dumps(event)


def test_step_is_a_no_op_when_disabled(tmp_path, cfg) -> None:
    off = cfg.model_copy(update={"federate": cfg.federate.model_copy(update={"enabled": False})})
    arts = [SimpleNamespace(path=str(tmp_path / n / "out"), metadata={}) for n in ("d", "m", "h")]
    assert run_step("federate", off.model_dump_json(), "r1", dataset=arts[0], model=arts[1], history=arts[2]) is False
    assert json.loads((tmp_path / "m" / "out").read_text()) == {"enabled": False}
    assert arts[2].metadata == {"enabled": False}
