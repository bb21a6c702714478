"""The README quotes only committed benchmark JSON: every number with its target and verdict, missed ones included."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _results_table():
    spec = importlib.util.spec_from_file_location("results_table", REPO / "scripts" / "results_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_results_section_matches_committed_json() -> None:
    table = _results_table()
    readme = (REPO / "README.md").read_text()
    wanted = table.replace_section(readme, table.render(table.full_results()))
    assert readme == wanted, "README results section is stale: run python scripts/results_table.py"


def test_every_goal_of_every_full_run_is_quoted_with_its_verdict() -> None:
    table = _results_table()
    readme = (REPO / "README.md").read_text()
    results = table.full_results()
    assert results, "no full benchmark results committed"
    for name, payload in results:
        assert payload.get("goals"), f"{name} has no goals"
        for g in payload["goals"]:
            row = f"| {g['name']} | {table.format_value(g['value'])} | {g['target']} | "
            assert row in readme, f"{name}: goal {g['name']!r} is not quoted"
            verdict = "met" if g["met"] else "**missed**"
            assert row + verdict + " |" in readme


def test_readme_quotes_no_measured_number_outside_the_generated_section() -> None:
    table = _results_table()
    readme = (REPO / "README.md").read_text()
    outside = readme[:readme.find(table.BEGIN)] + readme[readme.find(table.END):]
    outside = re.sub(r"```.*?```", "", outside, flags=re.S)  # commands, not claims
    claims = re.findall(r"\b\d+(?:\.\d+)?\s*(?:ms\b|×(?!\d)|x faster|samples/s|requests/s)|\b(?:AUC|ACC|accuracy) \d\.\d+",
                        outside)
    assert not claims, f"README quotes numbers outside the generated results section: {claims}"


def test_format_value_keeps_three_significant_digits() -> None:
    table = _results_table()
    assert table.format_value(4.606051204628691) == "4.61"
    assert table.format_value(-0.0196581196581197) == "-0.0197"
    assert table.format_value(12) == "12"
    assert json.loads(json.dumps(table.format_value(0.0))) == "0"
