"""Square (linf): the sign redraw that keeps every query on a new point."""

from __future__ import annotations

import pytest
import torch

from bastion.attacks.evasion import square
from bastion.attacks.evasion.square import LinfSquareAttack


@pytest.mark.parametrize("c", [1, 2, 3])
def test_flips_are_uniform_over_the_nonempty_channel_sets(c: int) -> None:
    gen = torch.Generator().manual_seed(0)
    n = 7000
    flips = square._flips(n, c, gen, torch.device("cpu")).view(n, c)
    assert bool(((flips == 1.0) | (flips == -1.0)).all())
    flipped = flips == -1.0
    assert bool(flipped.any(dim=1).all())  # never the empty set
    codes = (flipped.long() * 2 ** torch.arange(c)).sum(dim=1)
    counts = torch.bincount(codes, minlength=2**c)[1:].double()
    expected = n / (2**c - 1)
    assert bool(((counts - expected).abs() < 5 * expected**0.5).all())


def test_flips_beyond_62_channels_still_flip_something() -> None:
    flips = square._flips(50, 70, torch.Generator().manual_seed(1), torch.device("cpu"))
    assert flips.shape == (50, 70, 1, 1)
    assert bool((flips == -1.0).flatten(1).any(dim=1).all())


@pytest.mark.parametrize("c", [1, 3])
def test_linf_proposals_always_change_the_image(c: int) -> None:
    # Black inputs whose best point sits at the lower bound: a square whose signs are all
    # -1 would leave it unchanged, and must be redrawn.
    m, h, w = 400, 6, 6
    x = torch.zeros(m, c, h, w)
    best = x.clone()
    best[:, :, :, ::2] = 0.1  # mixed stripes, so only some squares are stuck
    attack = LinfSquareAttack(epsilon=0.1)
    gen = torch.Generator().manual_seed(3)
    for p in (0.05, 0.3, 0.8):
        cand = attack._propose(x, best, p, gen, (0.0, 1.0))
        assert bool(((cand - best).abs() > 1e-7).flatten(1).any(dim=1).all())
        delta = cand - x
        assert bool(((delta == 0.0) | (delta == 0.1)).all())
        # best moves only inside one square, with one sign per channel there
        changed = (cand != best).any(dim=1)
        assert bool((changed.flatten(1).sum(dim=1) <= h * w).all())
