"""Print the DICOM support table (Markdown): every case of tests/dicom_files.py built, decoded, compared.

Why a script: the table in the docs is generated from the same files the tests decode, so it cannot drift from
what the reader actually handles. Usage: ``.venv/bin/python scripts/dicom_support_table.py``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # tests/ is put on sys.path by main()
    from dicom_files import Case

REPO = Path(__file__).resolve().parents[1]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _decoded_row(case: Case, folder: Path) -> str:
    """Build one case, decode it as the reader does, and report the largest error against the source."""
    from dicom_files import build, expected_frame
    from pydicom.uid import UID

    from medopt.data.dicom_decode import decode_dicom

    path, source = build(case, folder / f"{case.id}.dcm")
    want = expected_frame(case, source, case.frames // 2 if case.frames > 1 else 0)
    try:
        got = decode_dicom(path)
        error = str(int(np.abs(got.astype(np.int64) - want.astype(np.int64)).max()))
        decoded = "yes"
    except Exception as exc:  # noqa: BLE001 - the table reports any failure instead of stopping
        decoded, error = f"no: {exc}", "-"
    photometric = case.photometric + (f" (planar {case.planar})" if case.photometric == "RGB" else "")
    bits = str(case.bits) + (" signed" if case.signed else "")
    return _row([f"`{case.syntax}`", UID(case.syntax).name, photometric, bits, str(case.frames), decoded, error])


def _unsupported_row(syntax: str, folder: Path) -> str:
    from dicom_files import build_unsupported
    from pydicom.uid import UID

    from medopt.data.dicom_decode import UnsupportedDicomError, decode_dicom

    try:
        decode_dicom(build_unsupported(syntax, folder / "unsupported.dcm"))
        decoded = "yes (unexpected)"
    except UnsupportedDicomError as exc:
        decoded = "no: " + str(exc).split(": ", 1)[-1]
    name = UID(syntax).name
    return _row([f"`{syntax}`", name if name != syntax else "(private)", "-", "-", "-", decoded, "-"])


def main() -> int:
    sys.path.insert(0, str(REPO / "tests"))
    sys.path.insert(0, str(REPO / "src"))
    from dicom_files import CASES, UNSUPPORTED

    lines = [_row(["Transfer syntax UID", "Name", "Photometric", "Bits stored", "Frames", "Decoded",
                   "Max abs error"]), _row(["---"] * 7)]
    with tempfile.TemporaryDirectory() as tmp:
        lines += [_decoded_row(case, Path(tmp)) for case in CASES]
        lines += [_unsupported_row(syntax, Path(tmp)) for syntax in UNSUPPORTED]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
