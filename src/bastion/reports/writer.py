"""Writing an assessment as JSON and as one self-contained HTML page (no external assets)."""

from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path

import jinja2

from bastion.core.assessment import AssessmentResult
from bastion.core.errors import LoadError
from bastion.core.threat_model import Severity
from bastion.reports.plots import accuracy_vs_epsilon_png

__all__ = ["render_html", "write_json", "write_report"]

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("bastion.reports", "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a report is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(result: AssessmentResult, path: str | os.PathLike[str]) -> Path:
    """Write the assessment as indented JSON (``findings.json``); returns the path."""
    target = Path(path)
    text = json.dumps(result.to_dict(), indent=2, sort_keys=False, allow_nan=False)
    _atomic_write(target, (text + "\n").encode())
    return target


def render_html(result: AssessmentResult) -> str:
    """The report as one HTML page with the plot embedded as a data URI."""
    plot = None
    if result.sweep:
        plot = base64.b64encode(accuracy_vs_epsilon_png(result.sweep)).decode("ascii")
    findings = sorted(result.findings, key=lambda f: -f.severity.rank)
    counts = {s.value: sum(1 for f in findings if f.severity is s) for s in Severity}
    template = _ENV.get_template("assessment.html")
    return template.render(
        result=result,
        findings=findings,
        counts=counts,
        plot=plot,
        sweep=sorted(result.sweep, key=lambda p: (p.attack, p.epsilon)),
    )


def write_report(result: AssessmentResult, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``findings.json`` and ``index.html`` under ``out_dir``; returns both paths."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LoadError(f"Expected --out to be a directory, but {out} is a file")
    html = render_html(result)
    paths = {"json": write_json(result, out / "findings.json"), "html": out / "index.html"}
    _atomic_write(paths["html"], html.encode("utf-8"))
    return paths
