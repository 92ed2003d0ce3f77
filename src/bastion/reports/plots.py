"""Plots for reports, rendered off-screen to PNG bytes."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Sequence

from bastion.core.assessment import SweepPoint

__all__ = ["accuracy_vs_epsilon_png"]


def accuracy_vs_epsilon_png(sweep: Sequence[SweepPoint]) -> bytes:
    """Accuracy under attack against epsilon as PNG bytes: one panel per norm, a line per attack.

    Budgets in different norms are not comparable, so each norm gets its own x-axis.
    """
    from matplotlib.figure import Figure  # the object API needs no GUI backend

    panels: dict[str, dict[str, list[SweepPoint]]] = defaultdict(lambda: defaultdict(list))
    for point in sweep:
        panels[point.norm.value][point.attack].append(point)
    norms = sorted(panels)
    fig = Figure(figsize=(5.2 * max(len(norms), 1), 3.8), dpi=100)
    for i, norm in enumerate(norms):
        ax = fig.add_subplot(1, len(norms), i + 1)
        clean = None
        for attack, points in sorted(panels[norm].items()):
            points.sort(key=lambda p: p.epsilon)
            clean = points[0].clean_accuracy
            eps = [0.0] + [p.epsilon for p in points]
            acc = [clean] + [p.robust_accuracy for p in points]
            ax.plot(eps, acc, marker="o", label=attack)
        if clean is not None:
            ax.axhline(clean, color="grey", linestyle=":", linewidth=1, label="clean accuracy")
        ax.set_xlabel(f"epsilon ({norm})")
        ax.set_ylabel("accuracy under attack")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize="small")
        ax.set_title(f"Accuracy versus {norm} budget")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
