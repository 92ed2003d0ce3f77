"""``bastion scan``: model files checked for code they would run on load, by content and without
ever deserialising them. `scan_paths` returns one `ScanReport` per file; `render` prints them."""

from bastion.supply_chain.scan.allowlist import classify_global
from bastion.supply_chain.scan.interface import RULES, ScanError, ScanIssue, ScanReport, Verdict
from bastion.supply_chain.scan.render import (
    OutputFormat,
    render,
    render_json,
    render_sarif,
    render_table,
)
from bastion.supply_chain.scan.scanner import detect_format, scan_file, scan_paths

__all__ = [
    "RULES",
    "OutputFormat",
    "ScanError",
    "ScanIssue",
    "ScanReport",
    "Verdict",
    "classify_global",
    "detect_format",
    "render",
    "render_json",
    "render_sarif",
    "render_table",
    "scan_file",
    "scan_paths",
]
