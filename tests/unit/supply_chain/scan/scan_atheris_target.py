"""The atheris target of ``test_scan_atheris``: run as a script, it fuzzes the scanner's content
detection and every format parser behind it, starting from the corpus directory it is given.

A crash is any exception out of the scanner, or a scan that ended in the scanner's own
internal-error finding (a bug it caught but should not have had).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["bastion.supply_chain.scan"]):
    from bastion.supply_chain.scan.scanner import INTERNAL_ERROR, scan_file

#: Where each input is written; the test passes its tmp_path so nothing outlives the run.
_WORK = Path(os.environ.get("BASTION_ATHERIS_WORKDIR") or tempfile.mkdtemp(prefix="atheris-"))
_FILE = _WORK / "input.bin"


def test_one_input(data: bytes) -> None:
    """Scan ``data`` as a file, with small bounds so an input cannot inflate without end."""
    _FILE.write_bytes(data)
    report = scan_file(_FILE, max_depth=4, max_total_bytes=1 << 24, max_members=256)
    for issue in report.issues:
        if issue.reason.startswith(INTERNAL_ERROR):
            raise RuntimeError(issue.reason)


def main() -> None:
    """``python scan_atheris_target.py CORPUS_DIR [libFuzzer flags...]``."""
    os.environ.setdefault("PYTHONHASHSEED", "0")
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
