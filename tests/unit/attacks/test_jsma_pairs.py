"""JSMA's pair search against a plain reference: every pair scored, one argmax."""

from __future__ import annotations

import pytest
import torch

from bastion.attacks.evasion import jsma


def _reference(
    a: torch.Tensor, b: torch.Tensor, domain: torch.Tensor, up: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 10 over all d x d ordered pairs, invalid ones scored -1, first maximum wins."""
    d = a.shape[1]
    big_a = a[:, :, None] + a[:, None, :]
    big_b = b[:, :, None] + b[:, None, :]
    valid = (big_a > 0) & (big_b < 0) if up else (big_a < 0) & (big_b > 0)
    valid &= domain[:, :, None] & domain[:, None, :] & ~torch.eye(d, dtype=torch.bool)
    score = torch.where(valid, (big_a * big_b).abs(), torch.tensor(-1.0)).flatten(1)
    best = score.argmax(dim=1)
    return best, score.gather(1, best[:, None]).squeeze(1) >= 0


@pytest.mark.parametrize("up", [True, False])
@pytest.mark.parametrize("tile", [1, 3, 128])
@pytest.mark.parametrize("ties", [False, True])
def test_best_pairs_matches_the_reference(
    monkeypatch: pytest.MonkeyPatch, up: bool, tile: int, ties: bool
) -> None:
    monkeypatch.setattr(jsma, "_TILE", tile)
    monkeypatch.setattr(jsma, "_PAIR_BLOCK", 40)  # several row blocks
    gen = torch.Generator().manual_seed(7 + tile + 2 * up + 3 * ties)
    for d in (1, 2, 5, 11, 16):
        m = 9
        a = torch.randn(m, d, generator=gen)
        b = torch.randn(m, d, generator=gen)
        if ties:  # few distinct values: many equal scores, broken by the first pair
            a, b = a.round(), b.round()
        domain = torch.rand(m, d, generator=gen) > 0.3
        domain[0] = False  # a row with nothing left
        if d > 1:
            domain[1] = True
        best, found = jsma._best_pairs(a, b, domain, up)
        ref_best, ref_found = _reference(a, b, domain, up)
        assert torch.equal(found, ref_found)
        assert torch.equal(best[ref_found], ref_best[ref_found])
        assert bool((best[~ref_found] == 0).all())
        p, q = best[found] // d, best[found] % d
        assert bool((p < q).all())


def test_best_pairs_finds_the_one_qualifying_pair() -> None:
    a = torch.tensor([[0.0, 2.0, -5.0, 3.0, 0.0]])
    b = torch.tensor([[0.0, -1.0, 4.0, -2.0, 0.0]])
    domain = torch.ones(1, 5, dtype=torch.bool)
    best, found = jsma._best_pairs(a, b, domain, True)
    assert bool(found.item()) and int(best.item()) == 1 * 5 + 3  # (2+3) * |-1-2| = 15
    domain[0, 3] = False
    best, found = jsma._best_pairs(a, b, domain, True)
    assert bool(found.item()) and int(best.item()) == 0 * 5 + 1  # (0+2) * |0-1| = 2
