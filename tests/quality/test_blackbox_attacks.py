"""The query-based attacks reach their published behaviour on the embedded digits CNN, through
the outsider's view only (``restricted("scores")`` / ``restricted("labels")``).

Measured on the first 100 test digits (clean 99 %; seed 0; reference on 300 digits, white-box
PGD: linf 0.2 -> 1 %, linf 0.15 -> 19 %, l2 1.0 -> 4 %, l2 2.0 -> 0 %):

=================================  =================  ===============  ==========
attack (queries per sample <=)     budget             measured         asserted
=================================  =================  ===============  ==========
Square linf (1000)                 linf 0.2           0 % robust       <= 5 %
Square linf (1000)                 linf 0.15          21 % robust      <= 30 %
Square l2 (1000)                   l2 2.0 / 1.0       0 % / 7 %        <= 5 % / 15 %
SimBA-DCT (step 0.2)               l2 2.0             6 %, 40 q/img    <= 15 %, 100
NES (1000, 50 samples)             linf 0.2           18 % robust      <= 30 %
HopSkipJump l2 (1000)              minimal            median l2 0.71   <= 1.0
HopSkipJump linf (1000)            minimal            median 0.149     <= 0.2
Boundary Attack l2 (1000)          minimal            median l2 0.83   <= 1.2
=================================  =================  ===============  ==========

Random noise of each decision-based result's own size (Gaussian direction for l2, random signs
for linf) leaves accuracy at 99 % (asserted >= 90 %), so the attack finds the boundary
rather than an image destroyed by a large budget. Square needs far fewer queries than its
cap: 49 per sample on average at linf 0.2.
"""

import pytest
import torch

from bastion.attacks import (
    L2BoundaryAttack,
    L2HopSkipJumpAttack,
    L2SimBADCTAttack,
    L2SquareAttack,
    LinfHopSkipJumpAttack,
    LinfNESAttack,
    LinfSquareAttack,
)
from bastion.attacks.base import Attack
from bastion.data.zoo import ZooEntry
from bastion.models import TorchModel

pytestmark = pytest.mark.quality

Data = tuple[torch.Tensor, torch.Tensor]


@pytest.fixture()
def test_set(digits_entry: ZooEntry) -> Data:
    test = digits_entry.test
    return torch.from_numpy(test.x[:100]), torch.from_numpy(test.y[:100])


def test_square_linf_breaks_the_model_with_few_queries(
    digits_model: TorchModel, test_set: Data
) -> None:
    x, y = test_set
    view = digits_model.restricted("scores")
    strong = LinfSquareAttack(epsilon=0.2, max_queries=1000)(view, x, y)
    assert strong.clean_accuracy >= 0.95
    assert strong.robust_accuracy <= 0.05
    assert strong.queries <= 150 * len(y)  # stops per sample once it succeeds
    assert LinfSquareAttack(epsilon=0.15, max_queries=1000)(view, x, y).robust_accuracy <= 0.30


def test_square_l2_breaks_the_model(digits_model: TorchModel, test_set: Data) -> None:
    x, y = test_set
    view = digits_model.restricted("scores")
    assert L2SquareAttack(epsilon=2.0, max_queries=1000)(view, x, y).robust_accuracy <= 0.05
    result = L2SquareAttack(epsilon=1.0, max_queries=1000)(view, x, y)
    assert result.robust_accuracy <= 0.15
    assert float(result.norms.max()) <= 1.0 + 1e-5


def test_simba_dct_breaks_the_model_in_few_queries(
    digits_model: TorchModel, test_set: Data
) -> None:
    x, y = test_set
    result = L2SimBADCTAttack(epsilon=2.0)(digits_model.restricted("scores"), x, y)
    assert result.robust_accuracy <= 0.15
    assert result.queries <= 100 * len(y)


def test_nes_lowers_accuracy(digits_model: TorchModel, test_set: Data) -> None:
    x, y = test_set
    result = LinfNESAttack(epsilon=0.2, max_queries=1000)(digits_model.restricted("scores"), x, y)
    assert result.robust_accuracy <= 0.30


@pytest.mark.parametrize(
    ("cls", "bound"),
    [(L2HopSkipJumpAttack, 1.0), (LinfHopSkipJumpAttack, 0.2), (L2BoundaryAttack, 1.2)],
)
def test_decision_attacks_find_small_perturbations_from_labels_alone(
    cls: type[Attack],
    bound: float,
    digits_model: TorchModel,
    test_set: Data,
) -> None:
    x, y = test_set
    # A large epsilon leaves the minimal perturbations unprojected, to read them off.
    result = cls(epsilon=100.0, max_queries=1000)(  # type: ignore[call-arg]
        digits_model.restricted("labels"), x, y
    )
    assert bool(result.success.all())
    assert result.queries <= 1000 * len(y)
    size = result.norms[result.clean_correct]
    assert float(size.median()) <= bound
    gen = torch.Generator().manual_seed(0)
    if cls is not LinfHopSkipJumpAttack:
        noise = torch.randn(x.shape, generator=gen)
        noise = noise / noise.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    else:
        noise = (torch.rand(x.shape, generator=gen) * 2 - 1).sign()
    noisy = (x + noise * result.norms.view(-1, 1, 1, 1)).clamp(0, 1)
    assert float((digits_model.labels(noisy) == y).float().mean()) >= 0.90
