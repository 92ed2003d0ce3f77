"""Labels an attack's ``run`` handed over (`Attack._note_labels`), matched to the rows they
cover, so `Attack.__call__` can skip its own forward pass for those rows."""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["Note", "known", "version"]


class Note(NamedTuple):
    """Labels seen at ``points``; ``version`` is the in-place counter of ``points`` then."""

    points: torch.Tensor
    labels: torch.Tensor
    version: int


def version(t: torch.Tensor) -> int:
    """The in-place modification counter of ``t`` (shared by its detached views)."""
    return int(getattr(t, "_version", -1))


def known(notes: list[Note], points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels (int64) and a mask (bool) on the CPU of the rows of ``points`` a note covers."""
    n = points.shape[0]
    labels = torch.zeros(n, dtype=torch.int64, device=points.device)
    done = torch.zeros(n, dtype=torch.bool, device=points.device)
    for note in reversed(notes):  # the latest note first
        if note.points.shape != points.shape or version(note.points) != note.version:
            continue
        same = ~done & (note.labels >= 0)
        if note.points is not points:
            same &= (note.points == points).flatten(1).all(dim=1)
        labels = torch.where(same, note.labels.to(torch.int64), labels)
        done |= same
        if bool(done.all()):
            break
    return labels.cpu(), done.cpu()
