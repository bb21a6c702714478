"""Installed size of a requirements file's pinned distributions, measured in the current environment.

Why: an image's Python layer is about the sum of its distributions' installed files, so this estimates what the
slim predictor (serving/requirements.lock) saves against the full project image (requirements.lock) without docker.
Sizes come from each distribution's RECORD (``importlib.metadata`` files); the file is taken as the whole closure
(a lock lists every dependency). The base image (python:3.11-slim-bookworm, ~125 MB uncompressed) is not included.

Usage: python scripts/image_size.py REQUIREMENTS... [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

MB = 1024 * 1024


def pins(path: Path) -> list[tuple[str, str]]:
    """(name, version) for every ``name==version`` line (comments, blank lines and extras markers dropped)."""
    found = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if "==" not in line:
            raise SystemExit(f"image_size: {path}: '{line}' is not pinned with ==")
        name, version = line.split("==", 1)
        found.append((name.split("[", 1)[0].strip(), version.split(";", 1)[0].strip()))
    return found


def installed_size(name: str) -> tuple[int, str | None]:
    """Bytes of the files the installed distribution ``name`` recorded, and its version (None: not installed)."""
    try:
        dist = distribution(name)
    except PackageNotFoundError:
        return 0, None
    total = 0
    for file in dist.files or ():
        path = Path(dist.locate_file(file))
        if path.is_file():
            total += path.stat().st_size
    return total, dist.version


def measure(path: Path) -> list[tuple[str, str, int, str | None]]:
    """(name, pinned version, installed bytes, installed version) per pin, largest first."""
    rows = [(name, version, *installed_size(name)) for name, version in pins(path)]
    return sorted(rows, key=lambda r: -r[2])


def _table(path: Path, rows: list[tuple[str, str, int, str | None]]) -> str:
    lines = [f"{path}:", f"  {'distribution':<32} {'pinned':<22} {'MB':>9}"]
    for name, version, size, have in rows:
        note = "" if have == version else f"  (installed: {have or 'missing'})"
        lines.append(f"  {name:<32} {version:<22} {size / MB:>9.1f}{note}")
    lines.append(f"  {'total (' + str(len(rows)) + ' distributions)':<55} {sum(r[2] for r in rows) / MB:>9.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print a table per file (or, with --json, {file: {"bytes": total, "missing": [...]}}); 0 on success."""
    p = argparse.ArgumentParser(description="Installed size of a requirements file's pinned distributions.")
    p.add_argument("requirements", nargs="+", type=Path)
    p.add_argument("--json", action="store_true", help="Totals as JSON instead of tables.")
    args = p.parse_args(argv)
    report = {}
    for path in args.requirements:
        if not path.is_file():
            print(f"image_size: no such file {path}", file=sys.stderr)
            return 1
        rows = measure(path)
        report[str(path)] = {"bytes": sum(r[2] for r in rows), "missing": [r[0] for r in rows if r[3] is None]}
        if not args.json:
            print(_table(path, rows))
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
