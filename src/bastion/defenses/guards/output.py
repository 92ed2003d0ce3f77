"""Output hardening: answer with no more than a role needs (label, top-k, or rounded scores).

Full-precision scores make score-based attacks and model extraction cheap; a label alone
forces an attacker onto far costlier decision-based attacks. The policy is chosen per role.
"""

from __future__ import annotations

from typing import Any

import torch

from bastion.core.validation import check_choice, check_int

__all__ = ["OUTPUT_MODES", "OutputPolicy"]

OUTPUT_MODES = ("label", "top-k", "scores")


class OutputPolicy:
    """How much of the model's answer a caller sees.

    Args:
        mode: ``"label"`` (class index only), ``"top-k"`` (the ``k`` best classes with their
            rounded scores) or ``"scores"`` (every class, rounded).
        k: classes shown in ``top-k`` mode.
        decimals: digits scores are rounded to.
    """

    def __init__(self, *, mode: str = "label", k: int = 1, decimals: int = 2) -> None:
        self.mode = check_choice("mode", mode, OUTPUT_MODES)
        self.k = check_int("k", k, low=1)
        self.decimals = check_int("decimals", decimals, low=0, high=8)

    def render(self, scores: torch.Tensor) -> list[dict[str, Any]]:
        """One JSON-ready answer per row of ``(n, classes)`` scores."""
        labels = scores.argmax(dim=1).tolist()
        rounded = torch.round(scores.to(torch.float64), decimals=self.decimals)
        out: list[dict[str, Any]] = []
        for i, label in enumerate(labels):
            answer: dict[str, Any] = {"label": int(label)}
            if self.mode == "top-k":
                k = min(self.k, scores.shape[1])
                values, idx = torch.topk(scores[i], k)
                answer["top"] = [
                    {"label": int(c), "score": round(float(v), self.decimals)}
                    for v, c in zip(values.tolist(), idx.tolist(), strict=True)
                ]
            elif self.mode == "scores":
                answer["scores"] = [float(v) for v in rounded[i].tolist()]
            out.append(answer)
        return out

    def __repr__(self) -> str:
        return f"OutputPolicy(mode={self.mode!r}, k={self.k}, decimals={self.decimals})"
