"""Transfer attacks: train a surrogate on the target's labels, attack it, submit the result.

Papernot, McDaniel, Goodfellow, Jha, Celik, Swami, "Practical Black-Box Attacks against
Machine Learning", ASIA CCS 2017. The attacker sees only labels. They label a small seed set
by querying the target, train a substitute model on it, and grow the set by Jacobian-based
dataset augmentation: each point moves by ``lambda * sign`` of the substitute's gradient of
the output for the target's label, so the new points probe where the substitute is
uncertain about the target's decision boundary. Adversarial examples crafted white-box on
the substitute are then submitted to the target, where many of them transfer.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import torch

from bastion.attacks.base import Attack, watch_budget
from bastion.attacks.evasion._substitute import (
    SubstituteTraining,
    SurrogateFactory,
    default_surrogate,
    seed_tensor,
)
from bastion.attacks.evasion.gradient import (
    L2ProjectedGradientDescentAttack,
    LinfProjectedGradientDescentAttack,
)
from bastion.attacks.evasion.momentum import LinfMomentumIterativeAttack
from bastion.core.threat_model import Access, Norm
from bastion.core.validation import check_bool, check_int, check_number, fail
from bastion.models.base import Model
from bastion.models.tensors import as_batch, check_in_bounds
from bastion.models.torch_model import TorchModel

__all__ = [
    "L2TransferPGDAttack",
    "LinfTransferMomentumAttack",
    "LinfTransferPGDAttack",
    "SurrogateFactory",
    "default_surrogate",
]


class _Transfer(Attack):
    """Papernot et al.'s substitute training, then a white-box attack on the substitute."""

    norm = Norm.LINF
    requires: ClassVar[Access] = Access.LABELS
    leaf: ClassVar[str] = "evasion.transfer"

    def __init__(
        self,
        *,
        epsilon: float,
        substitute_epochs: int,
        augmentation_step: float,
        flip_every: int | None,
        reservoir_after: int | None,
        reservoir_size: int,
        train_epochs: int,
        learning_rate: float,
        surrogate: SurrogateFactory | None,
        seed_data: Any,
        max_queries: int | None,
        stop_at_budget: bool,
        batch_size: int,
        seed: int,
    ) -> None:
        super().__init__(epsilon=epsilon, batch_size=batch_size, seed=seed)
        self.substitute_epochs = check_int("substitute_epochs", substitute_epochs, low=1)
        self.augmentation_step = check_number(
            "augmentation_step", augmentation_step, low=0.0, low_open=True
        )
        self.flip_every = None if flip_every is None else check_int("flip_every", flip_every, low=1)
        self.reservoir_after = (
            None
            if reservoir_after is None
            else check_int("reservoir_after", reservoir_after, low=1)
        )
        self.reservoir_size = check_int("reservoir_size", reservoir_size, low=1)
        self.train_epochs = check_int("train_epochs", train_epochs, low=1)
        self.learning_rate = check_number("learning_rate", learning_rate, low=0.0, low_open=True)
        if surrogate is not None and not callable(surrogate):
            raise fail(
                "surrogate", "None or a callable (input_shape, num_classes) -> nn.Module", surrogate
            )
        factory: SurrogateFactory = surrogate or default_surrogate
        self.surrogate = getattr(factory, "__name__", type(factory).__name__)
        self._seed_data = None if seed_data is None else seed_tensor(seed_data)
        self.max_queries = (
            None if max_queries is None else check_int("max_queries", max_queries, low=1)
        )
        self.stop_at_budget = check_bool("stop_at_budget", stop_at_budget)
        self._training = SubstituteTraining(
            substitute_epochs=self.substitute_epochs,
            augmentation_step=self.augmentation_step,
            flip_every=self.flip_every,
            reservoir_after=self.reservoir_after,
            reservoir_size=self.reservoir_size,
            train_epochs=self.train_epochs,
            learning_rate=self.learning_rate,
            factory=factory,
            max_queries=self.max_queries,
            stop_at_budget=self.stop_at_budget,
            batch_size=self.batch_size,
        )
        # With seed_data the substitute does not depend on the batch: train it once per call
        # (a call's batches share its generator, which this holds, so identity is safe).
        self._trained: tuple[torch.Generator, TorchModel | None, bool] | None = None

    @abstractmethod
    def _white_box(self) -> Attack:
        """The white-box attack run on the trained substitute."""

    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        if self._seed_data is None:
            substitute, cut = self.train_substitute(model, x, generator)
        else:
            if self._trained is None or self._trained[0] is not generator:
                seed = as_batch(self._seed_data, model.input_shape, name="seed_data")
                check_in_bounds(seed, model.bounds, name="seed_data")
                self._trained = (generator, *self.train_substitute(model, seed, generator))
            _, substitute, cut = self._trained
        if cut:  # the result reports that a budget limited what was tried on these samples
            watch_budget(_AllStopped(x.shape[0]))
        if substitute is None:  # not one label could be bought: nothing to transfer from
            return x
        adv: torch.Tensor = self._white_box()(substitute, x, y, target=target).x_adv
        return adv.to(x.device)

    def train_substitute(
        self, model: Model, seed: torch.Tensor, generator: torch.Generator
    ) -> tuple[TorchModel | None, bool]:
        """Train a substitute on the target's labels of ``seed`` and its augmentations.

        Returns the substitute as a `TorchModel` with its own query counter (None when the
        budget left no label to buy) and whether a budget (``max_queries`` or the model's)
        cut the schedule short. Deterministic given ``generator``; the global RNG is left
        as it was.
        """
        return self._training.train(model, seed, generator)


class _AllStopped:
    """Reports every sample of a batch as stopped by a budget (the substitute was cut short)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def stopped_by_budget(self) -> torch.Tensor:
        return torch.ones(self.n, dtype=torch.bool, device="cpu")


_SUBSTITUTE_DOC = """
    Substitute training (Papernot et al. 2017, Algorithm 1): the seed set (``seed_data``, or
    by default the batch being attacked, which is what an attacker holds) is labelled by the
    target; for each of ``substitute_epochs`` rounds the substitute (``surrogate(input_shape,
    num_classes)``, default `default_surrogate`) trains ``train_epochs`` epochs with Adam at
    ``learning_rate`` on all labelled points, then the set doubles by Jacobian-based
    augmentation with step ``augmentation_step`` (the paper's lambda, 0.1 there). Two
    refinements from Papernot, McDaniel & Goodfellow, "Transferability in Machine Learning:
    from Phenomena to Black-Box Attacks using Adversarial Samples" (arXiv:1605.07277, 2016)
    are available: the periodic step size, ``lambda_rho = lambda * (-1) ** ceil(rho / tau)``
    with ``tau = flip_every`` (None keeps the sign), and reservoir sampling, where after
    round ``reservoir_after`` (sigma) only ``reservoir_size`` (kappa) points drawn at random
    from the set are augmented per round (off by default). The new points are labelled by
    the target. Labels bought: ``n * 2 ** (substitute_epochs - 1)`` for a seed set of ``n``
    without the reservoir. With a user seed set the substitute is trained once per call,
    else once per batch of ``batch_size`` inputs. The substitute is trained with Adam, a
    choice of this implementation (it needs little tuning across input sizes).

    Every label is a query on the target and is counted in the result's ``queries``;
    crafting on the substitute costs the target nothing. ``max_queries`` caps the labels
    bought per substitute; with ``stop_at_budget`` (default) the attack also stops buying
    before the model's query budget runs out, trains on what it has, and still returns
    adversarial inputs (the clean inputs when not one label could be bought); the result's
    ``budget_exhausted`` then says that a budget cut the training short. Deterministic
    given ``seed``; the global RNG is not consumed.
"""


class LinfTransferMomentumAttack(_Transfer):
    __doc__ = (
        """Transfer attack (linf): MI-FGSM crafted on a substitute trained from the target's
    labels (Papernot et al., ASIA CCS 2017; Dong et al., CVPR 2018 for MI-FGSM, whose
    momentum makes examples transfer better). ``steps``, ``decay`` and ``stepsize`` go to
    `LinfMomentumIterativeAttack` (defaults 10, 1.0 and ``epsilon / steps``, as there).
"""
        + _SUBSTITUTE_DOC
    )

    id = "transfer-mifgsm-linf"
    title = "Transfer (MI-FGSM)"

    def __init__(
        self,
        *,
        epsilon: float,
        steps: int = 10,
        decay: float = 1.0,
        stepsize: float | None = None,
        substitute_epochs: int = 6,
        augmentation_step: float = 0.1,
        flip_every: int | None = 3,
        reservoir_after: int | None = None,
        reservoir_size: int = 400,
        train_epochs: int = 10,
        learning_rate: float = 1e-2,
        surrogate: SurrogateFactory | None = None,
        seed_data: Any = None,
        max_queries: int | None = None,
        stop_at_budget: bool = True,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(
            epsilon=epsilon,
            substitute_epochs=substitute_epochs,
            augmentation_step=augmentation_step,
            flip_every=flip_every,
            reservoir_after=reservoir_after,
            reservoir_size=reservoir_size,
            train_epochs=train_epochs,
            learning_rate=learning_rate,
            surrogate=surrogate,
            seed_data=seed_data,
            max_queries=max_queries,
            stop_at_budget=stop_at_budget,
            batch_size=batch_size,
            seed=seed,
        )
        # Built (and so validated) here; the substitute attack is this one, reused per batch.
        self._attack = LinfMomentumIterativeAttack(
            epsilon=self.epsilon,
            steps=steps,
            decay=decay,
            stepsize=stepsize,
            batch_size=self.batch_size,
            seed=self.seed,
        )
        self.steps, self.decay, self.stepsize = (
            self._attack.steps,
            self._attack.decay,
            self._attack.stepsize,
        )

    def _white_box(self) -> Attack:
        return self._attack


class LinfTransferPGDAttack(_Transfer):
    __doc__ = (
        """Transfer attack (linf): PGD crafted on a substitute trained from the target's labels
    (Papernot et al., ASIA CCS 2017; Madry et al., ICLR 2018 for PGD). ``steps``,
    ``stepsize`` and ``random_start`` go to `LinfProjectedGradientDescentAttack` (defaults
    40, ``2.5 * epsilon / steps`` and True, as there).
"""
        + _SUBSTITUTE_DOC
    )

    id = "transfer-pgd-linf"
    title = "Transfer (PGD)"
    _pgd: ClassVar[type[LinfProjectedGradientDescentAttack | L2ProjectedGradientDescentAttack]] = (
        LinfProjectedGradientDescentAttack
    )

    def __init__(
        self,
        *,
        epsilon: float,
        steps: int = 40,
        stepsize: float | None = None,
        random_start: bool = True,
        substitute_epochs: int = 6,
        augmentation_step: float = 0.1,
        flip_every: int | None = 3,
        reservoir_after: int | None = None,
        reservoir_size: int = 400,
        train_epochs: int = 10,
        learning_rate: float = 1e-2,
        surrogate: SurrogateFactory | None = None,
        seed_data: Any = None,
        max_queries: int | None = None,
        stop_at_budget: bool = True,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(
            epsilon=epsilon,
            substitute_epochs=substitute_epochs,
            augmentation_step=augmentation_step,
            flip_every=flip_every,
            reservoir_after=reservoir_after,
            reservoir_size=reservoir_size,
            train_epochs=train_epochs,
            learning_rate=learning_rate,
            surrogate=surrogate,
            seed_data=seed_data,
            max_queries=max_queries,
            stop_at_budget=stop_at_budget,
            batch_size=batch_size,
            seed=seed,
        )
        self._attack = self._pgd(
            epsilon=self.epsilon,
            steps=steps,
            stepsize=stepsize,
            random_start=random_start,
            batch_size=self.batch_size,
            seed=self.seed,
        )
        self.steps, self.stepsize, self.random_start = (
            self._attack.steps,
            self._attack.stepsize,
            self._attack.random_start,
        )

    def _white_box(self) -> Attack:
        return self._attack


class L2TransferPGDAttack(LinfTransferPGDAttack):
    """Transfer attack (l2): l2 PGD crafted on a substitute trained from the target's labels.

    The substitute is trained exactly as for `LinfTransferPGDAttack` (Papernot et al., ASIA
    CCS 2017); the examples are crafted with `L2ProjectedGradientDescentAttack` (Madry et
    al., ICLR 2018) on the substitute and submitted to the target. Same arguments.
    """

    id = "transfer-pgd-l2"
    norm = Norm.L2
    _pgd = L2ProjectedGradientDescentAttack
