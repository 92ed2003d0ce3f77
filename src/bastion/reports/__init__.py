"""Reports: an assessment as JSON and as a self-contained HTML page with plots.

Reports read only `bastion.core` results; templates autoescape everything they show.
"""

from bastion.reports.plots import accuracy_vs_epsilon_png
from bastion.reports.writer import render_html, write_json, write_report

__all__ = ["accuracy_vs_epsilon_png", "render_html", "write_json", "write_report"]
