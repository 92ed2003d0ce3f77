"""APGD, MI-FGSM, DeepFool and C&W reach their published behaviour on the embedded digits CNN.

Measured on this model (first 300 test digits unless noted; clean accuracy 98 %):

- linf 0.15: PGD-40 19 % robust accuracy (also with early stopping, at half the queries),
  APGD-CE 17.3 %, APGD-DLR 23.3 %, FGSM 30.3 %, MI-FGSM 25.3 %. On the first 100 digits
  APGD-CE 16 %, APGD-T 15 %. l2 0.7: PGD-40 28.7 %, APGD-CE 24.3 %.
- l2 1.0, first 100 digits: PGD-40 succeeds on 98 % with median l2 0.999; C&W (50 Adam steps,
  4 binary-search rounds, lr 0.5, c0 = 1) on 97 % with median l2 0.564.
- FAB-T l2 at 1.0, first 100 digits: 0 % robust, median minimal l2 0.535 against
  DeepFool's 0.544 on the same digits, at most DeepFool's on 80 % of them.
- DeepFool l2 (unbounded): 100 % success, median l2 0.586; the smallest FGM step that fools
  the same samples (swept over 40 sizes) has median 0.70, and DeepFool's is smaller on 99 %.

Margins: APGD-CE at least as strong as PGD-40 at the same budget, in linf and l2 (robust
accuracy at most PGD's + 1 point; Croce & Hein 2020, Table 2 shows APGD at or below PGD).
APGD-T at most APGD-CE's robust accuracy (+ 1 point for one sample in 100). MI-FGSM at most
FGSM's, and at least 3 points below (measured 5). C&W within 2 points of PGD's success with a
median l2 at most 70 % of PGD's (measured 56 %). DeepFool's median minimal l2 at most 90 % of
FGM's (measured 84 %), smaller on at least 90 % of samples (measured 99 %). FAB-T at most 2 %
robust at l2 1.0, median minimal l2 no larger than DeepFool's, per sample no larger on 70 %
(Croce & Hein, ICML 2020, report FAB below DeepFool's norms).
"""

import pytest
import torch

from bastion.attacks import (
    FGM,
    FGSM,
    L2PGD,
    PGD,
    L2APGDCEAttack,
    L2CarliniWagnerAttack,
    L2DeepFoolAttack,
    L2FABTargetedAttack,
    LinfAPGDCEAttack,
    LinfAPGDTargetedAttack,
    LinfMomentumIterativeAttack,
)
from bastion.data.zoo import ZooEntry
from bastion.models import TorchModel

pytestmark = pytest.mark.quality


@pytest.fixture()
def test_set(digits_entry: ZooEntry) -> tuple[torch.Tensor, torch.Tensor]:
    test = digits_entry.test
    return torch.from_numpy(test.x[:300]), torch.from_numpy(test.y[:300])


def test_apgd_ce_is_at_least_as_strong_as_pgd(
    digits_model: TorchModel, test_set: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = test_set
    pgd = PGD(epsilon=0.15, steps=40, early_stop=True)(digits_model, x, y)
    apgd = LinfAPGDCEAttack(epsilon=0.15)(digits_model, x, y)
    assert pgd.robust_accuracy <= 0.30  # the attack works at all
    assert apgd.robust_accuracy <= pgd.robust_accuracy + 0.01
    assert float(apgd.norms.max()) <= 0.15 + 1e-6
    pgd2 = L2PGD(epsilon=0.7, steps=40, early_stop=True)(digits_model, x, y)
    apgd2 = L2APGDCEAttack(epsilon=0.7)(digits_model, x, y)
    assert apgd2.robust_accuracy <= pgd2.robust_accuracy + 0.01


def test_apgd_t_is_at_least_as_strong_as_apgd_ce(
    digits_model: TorchModel, test_set: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = test_set
    x, y = x[:100], y[:100]
    ce = LinfAPGDCEAttack(epsilon=0.15)(digits_model, x, y)
    targeted = LinfAPGDTargetedAttack(epsilon=0.15)(digits_model, x, y)
    assert targeted.robust_accuracy <= ce.robust_accuracy + 0.01
    assert targeted.robust_accuracy <= 0.25


def test_mifgsm_beats_fgsm(
    digits_model: TorchModel, test_set: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = test_set
    fgsm = FGSM(epsilon=0.15)(digits_model, x, y)
    momentum = LinfMomentumIterativeAttack(epsilon=0.15)(digits_model, x, y)
    assert momentum.robust_accuracy <= fgsm.robust_accuracy - 0.03


def test_cw_finds_smaller_adversarials_than_pgd(
    digits_model: TorchModel, test_set: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = test_set
    x, y = x[:100], y[:100]
    pgd = L2PGD(epsilon=1.0, steps=40)(digits_model, x, y)
    cw = L2CarliniWagnerAttack(
        epsilon=1.0, steps=50, binary_search_steps=4, lr=0.5, initial_const=1.0
    )(digits_model, x, y)
    assert cw.success_rate >= pgd.success_rate - 0.02
    pgd_l2 = float(pgd.norms[pgd.success & pgd.clean_correct].median())
    cw_l2 = float(cw.norms[cw.success & cw.clean_correct].median())
    assert cw_l2 <= 0.7 * pgd_l2


def test_deepfool_perturbations_are_smaller_than_fgms(
    digits_model: TorchModel, test_set: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = test_set
    deepfool = L2DeepFoolAttack(epsilon=10.0)(digits_model, x, y)
    assert deepfool.success_rate >= 0.99
    # The smallest FGM step (on a grid of 40 sizes) that fools each sample.
    smallest = torch.full((x.shape[0],), float("inf"))
    for eps in torch.linspace(0.1, 4.0, 40).flip(0).tolist():
        fgm = FGM(epsilon=eps)(digits_model, x, y)
        smallest[fgm.success & fgm.clean_correct] = eps
    both = deepfool.success & deepfool.clean_correct & torch.isfinite(smallest)
    assert float(both.float().mean()) >= 0.9
    df_l2 = deepfool.norms[both]
    assert float(df_l2.median()) <= 0.9 * float(smallest[both].median())
    assert float((df_l2 < smallest[both]).float().mean()) >= 0.9


def test_fab_t_finds_smaller_perturbations_than_deepfool(
    digits_model: TorchModel, test_set: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = test_set
    x, y = x[:100], y[:100]
    fab = L2FABTargetedAttack(epsilon=1.0)(digits_model, x, y)
    deepfool = L2DeepFoolAttack(epsilon=10.0)(digits_model, x, y)
    assert fab.robust_accuracy <= 0.02
    both = fab.success & deepfool.success & fab.clean_correct
    assert float(fab.norms[both].median()) <= float(deepfool.norms[both].median())
    assert float((fab.norms[both] <= deepfool.norms[both] + 1e-6).float().mean()) >= 0.7
