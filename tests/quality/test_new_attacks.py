"""JSMA, l1 PGD, Sign-OPT and untargeted FAB really succeed on the embedded digits CNN.

Measured on this model (the 64 digits of ``digits_batch`` unless noted; clean accuracy 98 %;
targets drawn uniformly among the wrong classes with seed 0), OMP_NUM_THREADS=1:

- JSMA (theta +1, gamma 0.3, i.e. at most 19 of 64 features), saliency on the logits
  (JSMA-Z, ``use_probabilities=False``): targeted success 62.5 % (17 % at the paper's
  gamma 0.145; it reports 97 % on 28x28 MNIST), untargeted 92 %. On the softmax (JSMA-F, the
  default): targeted 98.4 % with 7.0 features changed on average among
  successes (72 % at gamma 0.145), untargeted 100 %. Setting as many random features of each
  sample's domain to the maximum as JSMA-Z changed reaches the target on 4.7 %.
- PGD-l1 (SLIDE, 40 steps, percentile 99) at epsilon 3.0: 6.3 % robust accuracy; one SLIDE
  step of size epsilon without random start (percentile 80, the FGSM analogue) 33 %;
  SLIDE with the paper's rule at the box (``box_aware=False``) 72 %.
- Sign-OPT, first 16 digits, 2000 queries per sample: untargeted median l2 0.488 (all
  adversarial and within l2 1.0) against HopSkipJump's 0.568 at the same budget;
  targeted median 0.858, 93.8 % within l2 1.5. First 20 digits, 4000 queries, label-only
  view, seeds 0-2: mean of the per-seed medians 0.527 (0.585 when it started from one
  uniform-noise point instead of the best of 100 Gaussian directions), all within l2 1.0.
- FAB (untargeted) against FAB-T's run towards the runner-up class, first 32 digits, 20
  steps: median minimal l2 0.490 both (no larger on 91 % of digits); linf 0.0985 against
  0.0995 (no larger on 94 %). At 100 steps on 64 digits linf 0.102 against 0.107.

Margins are stated in each test, with slack below the measured figures.
"""

import pytest
import torch

from bastion.attacks.evasion import (
    L0JacobianSaliencyMapAttack,
    L1ProjectedGradientDescentAttack,
    L2FABAttack,
    L2FABTargetedAttack,
    L2HopSkipJumpAttack,
    L2SignOPTAttack,
    LinfFABAttack,
    LinfFABTargetedAttack,
)
from bastion.models import TorchModel

pytestmark = pytest.mark.quality

Batch = tuple[torch.Tensor, torch.Tensor]


def _targets(y: torch.Tensor, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (y + torch.randint(1, 10, y.shape, generator=gen)) % 10


def test_jsma_reaches_targets_with_few_features_far_better_than_random_features(
    digits_model: TorchModel, digits_batch: Batch
) -> None:
    x, y = digits_batch
    target = _targets(y)
    jsma_z = L0JacobianSaliencyMapAttack(epsilon=64, gamma=0.3, use_probabilities=False)
    result = jsma_z(digits_model, x, y, target=target)
    assert float(result.norms.max()) <= 19  # floor(0.3 * 64) features at most
    assert float(result.success.float().mean()) >= 0.55  # measured 0.625

    # The saliency map matters: as many random features (of those JSMA could raise) set to
    # the maximum reach the target far less often.
    gen = torch.Generator().manual_seed(1)
    flat = x.flatten(1).clone()
    for i, count in enumerate(result.norms.long().tolist()):
        free = (flat[i] < 1.0).nonzero().squeeze(1)
        pick = free[torch.randperm(free.numel(), generator=gen)[:count]]
        flat[i, pick] = 1.0
    with digits_model.counter.paused():
        random_hit = digits_model.labels(flat.view_as(x)) == target
    assert float(result.success.float().mean()) >= float(random_hit.float().mean()) + 0.35

    untargeted = jsma_z(digits_model, x, y)
    assert float(untargeted.success.float().mean()) >= 0.85  # measured 0.92


def test_jsma_on_the_softmax_reaches_almost_every_target(
    digits_model: TorchModel, digits_batch: Batch
) -> None:
    x, y = digits_batch
    attack = L0JacobianSaliencyMapAttack(epsilon=64, gamma=0.3)  # JSMA-F, the default
    result = attack(digits_model, x, y, target=_targets(y))
    assert float(result.success.float().mean()) >= 0.9  # measured 0.984
    assert float(result.norms[result.success].mean()) <= 9.0  # measured 7.0 features


def test_l1_pgd_beats_a_single_sparse_step_and_the_box_unaware_rule(
    digits_model: TorchModel, digits_batch: Batch
) -> None:
    x, y = digits_batch
    pgd = L1ProjectedGradientDescentAttack(epsilon=3.0)(digits_model, x, y)
    assert float(pgd.norms.max()) <= 3.0 + 1e-4
    assert pgd.robust_accuracy <= 0.15  # measured 0.063
    one_step = L1ProjectedGradientDescentAttack(
        epsilon=3.0, steps=1, stepsize=3.0, percentile=80.0, random_start=False
    )(digits_model, x, y)
    assert one_step.robust_accuracy >= pgd.robust_accuracy + 0.2  # measured +0.27
    paper_rule = L1ProjectedGradientDescentAttack(epsilon=3.0, box_aware=False)(digits_model, x, y)
    assert paper_rule.robust_accuracy >= pgd.robust_accuracy + 0.4  # measured +0.66


def test_sign_opt_finds_small_perturbations_from_labels_alone(
    digits_model: TorchModel, digits_batch: Batch
) -> None:
    x, y = digits_batch
    x, y = x[:16], y[:16]
    sign_opt = L2SignOPTAttack(epsilon=100.0, max_queries=2000)(digits_model, x, y)
    assert sign_opt.queries <= 2000 * 16
    within = sign_opt.success & (sign_opt.norms <= 1.0)
    assert float(within.float().mean()) >= 0.8  # measured 1.0
    median = float(sign_opt.norms[sign_opt.success].median())
    assert median <= 0.65  # measured 0.488
    hsj = L2HopSkipJumpAttack(epsilon=100.0, max_queries=2000)(digits_model, x, y)
    # Cheng et al. (ICLR 2020) report Sign-OPT ahead of HopSkipJump at equal queries.
    assert median <= float(hsj.norms[hsj.success].median())  # measured 0.488 vs 0.568


def test_sign_opt_median_at_4000_queries(digits_model: TorchModel, digits_batch: Batch) -> None:
    # The benchmark's setting (bench.new_attacks: 20 digits, 4000 queries), over three seeds.
    x, y = digits_batch[0][:20], digits_batch[1][:20]
    view = digits_model.restricted("labels")
    medians, within = [], []
    for seed in range(3):
        result = L2SignOPTAttack(epsilon=100.0, max_queries=4000, seed=seed)(view, x, y)
        won = result.success & result.clean_correct
        medians.append(float(result.norms[won].median()))
        within.append(float((won & (result.norms <= 1.0)).sum() / result.clean_correct.sum()))
    # measured 0.527 (0.539, 0.527, 0.515); 0.585 from a single uniform-noise start
    assert sum(medians) / 3 <= 0.55
    assert min(within) >= 0.94  # measured 1.0 for each seed


def test_sign_opt_targeted(digits_model: TorchModel, digits_batch: Batch) -> None:
    x, y = digits_batch
    x, y = x[:16], y[:16]
    result = L2SignOPTAttack(epsilon=100.0, max_queries=2000)(
        digits_model, x, y, target=_targets(y)
    )
    within = result.success & (result.norms <= 1.5)
    assert float(within.float().mean()) >= 0.75  # measured 0.938


def test_untargeted_fab_is_at_least_as_small_as_fab_t(
    digits_model: TorchModel, digits_batch: Batch
) -> None:
    x, y = digits_batch
    x, y = x[:32], y[:32]
    for fab, fab_t, slack in (
        (L2FABAttack, L2FABTargetedAttack, 0.01),
        (LinfFABAttack, LinfFABTargetedAttack, 0.003),
    ):
        free = fab(epsilon=100.0, steps=20)(digits_model, x, y)
        targeted = fab_t(epsilon=100.0, steps=20, target_classes=1)(digits_model, x, y)
        assert bool(free.success.all())
        median = float(free.norms.median())
        assert median <= float(targeted.norms.median()) + slack
        no_larger = free.norms <= targeted.norms + 1e-6
        assert float(no_larger.float().mean()) >= 0.75  # measured 0.91 (l2), 0.94 (linf)
