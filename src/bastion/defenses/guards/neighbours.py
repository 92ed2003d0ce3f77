"""Per-identity nearest-neighbour detection of query attacks.

Chen, Carlini, Wagner, "Stateful Detection of Black-Box Adversarial Attacks", SPAI 2020.

Each identity's recent queries are kept in a buffer. A new query's score is the mean distance
to its ``k`` nearest neighbours in that buffer; an attack's queries crowd around one point, so
the score falls far below what benign traffic produces. The threshold is the ``fpr`` quantile
of the same score over benign data (the paper: 0.1%). The paper embeds queries with a trained
contrastive encoder; this guard uses the raw input or a fixed random projection of it, which
keeps it free of training code (Chen et al. report the raw-pixel variant as weaker against
attackers who add noise or transform their queries).

``skip_nearest`` (not in the paper) leaves the nearest few neighbours out of the mean, so a
client re-sending an input (a retry) is not taken for an attack: each copy would otherwise
add a distance near zero to the next copy's score.
"""

from __future__ import annotations

import numpy as np
import torch

from bastion.core.errors import ValidationError
from bastion.core.validation import check_int, check_number
from bastion.defenses.guards.interface import Action, Guard, Query, Verdict

__all__ = ["NearestNeighbourGuard"]


class NearestNeighbourGuard(Guard):
    """Flag an identity whose new query lies unusually close to its own earlier queries.

    Args:
        k: neighbours averaged (paper: 50 on CIFAR-10 against attacks of thousands of
            queries; 5 here, so an attack is seen within its first 50 queries).
        threshold: mean k-NN L2 distance below which a query is flagged; set it with
            `calibrate` unless it is known.
        skip_nearest: nearest neighbours left out of the mean (paper: 0): the score averages
            neighbours ``skip_nearest + 1 .. skip_nearest + k``, so a client that re-sends an
            input up to ``skip_nearest`` more times does not drag its score down, while an
            attack, with many close queries, still does. Not in the paper.
        buffer_size: how many of each identity's queries are kept.
        projection_dim: project inputs to this many dimensions with a fixed Gaussian
            matrix (None keeps the raw input).
        seed: seed of the projection matrix.
        action: what to do with a flagged query.
    """

    name = "nearest-neighbour"

    def __init__(
        self,
        *,
        k: int = 5,
        threshold: float = 0.0,
        skip_nearest: int = 0,
        buffer_size: int = 1000,
        projection_dim: int | None = None,
        seed: int = 0,
        action: Action | str = Action.FLAG,
    ) -> None:
        super().__init__(action=action)
        self.k = check_int("k", k, low=1)
        self.threshold = check_number("threshold", threshold, low=0)
        self.skip_nearest = check_int("skip_nearest", skip_nearest, low=0)
        self.buffer_size = check_int("buffer_size", buffer_size, low=self.k + self.skip_nearest)
        self.projection_dim = (
            None if projection_dim is None else check_int("projection_dim", projection_dim, low=1)
        )
        self.seed = check_int("seed", seed)
        self._projection: torch.Tensor | None = None
        # Per identity: a ring buffer of features and how many were ever added. NumPy, not
        # torch: one query against a small bank is too little work for a thread pool, and
        # waking one costs more than the arithmetic on a busy machine.
        self._buffers: dict[str, tuple[np.ndarray, int]] = {}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature vectors the distances are measured in, ``(n, d)``."""
        flat = x.detach().reshape(x.shape[0], -1).to(torch.float32).cpu()
        if self.projection_dim is None:
            return flat
        if self._projection is None or self._projection.shape[0] != flat.shape[1]:
            gen = torch.Generator().manual_seed(self.seed)
            d = flat.shape[1]
            self._projection = torch.randn(d, self.projection_dim, generator=gen, device="cpu") / (
                self.projection_dim**0.5
            )
        return flat @ self._projection

    def _score(self, feature: np.ndarray, bank: np.ndarray) -> float:
        dists = np.sqrt(((bank - feature) ** 2).sum(axis=1))
        last = self.k + self.skip_nearest
        nearest = np.sort(np.partition(dists, last - 1)[:last])[self.skip_nearest :]
        return float(nearest.mean())

    def calibrate(self, benign: torch.Tensor, *, fpr: float = 0.001) -> float:
        """Set `threshold` to the ``fpr`` quantile of benign k-NN scores; return it.

        Each benign sample is scored against all the others, as if one identity had sent the
        whole set, so the threshold flags about ``fpr`` of such traffic.
        """
        fpr = check_number("fpr", fpr, low=0, high=1, low_open=True, high_open=True)
        feats = self.features(benign)
        last = self.k + self.skip_nearest
        if feats.shape[0] <= last:
            skip = f" + skip_nearest={self.skip_nearest}" if self.skip_nearest else ""
            raise ValidationError(
                f"Expected more than k={self.k}{skip} benign samples to calibrate on, "
                f"but got {feats.shape[0]}"
            )
        dists = torch.cdist(feats, feats)
        dists.fill_diagonal_(float("inf"))
        nearest = torch.topk(dists, last, dim=1, largest=False).values
        scores = nearest[:, self.skip_nearest :].mean(dim=1)
        self.threshold = float(torch.quantile(scores.double(), fpr))
        return self.threshold

    def check(self, query: Query) -> Verdict:
        """Score each sample against the identity's buffer, then add it; fire below threshold."""
        feats = self.features(self._batch(query)).numpy()
        bank, added = self._buffers.get(query.identity, (None, 0))
        if bank is None or bank.shape[1] != feats.shape[1]:
            bank, added = np.empty((self.buffer_size, feats.shape[1]), dtype=np.float32), 0
        lowest = float("inf")
        for feature in feats:
            filled = min(added, self.buffer_size)
            if filled >= self.k + self.skip_nearest:
                lowest = min(lowest, self._score(feature, bank[:filled]))
            bank[added % self.buffer_size] = feature
            added += 1
        self._buffers[query.identity] = (bank, added)
        if lowest < self.threshold:
            return self.fire(
                f"queries cluster: mean distance to the {self.k} nearest earlier queries of "
                f"this identity is {lowest:.4g} < {self.threshold:.4g}",
                score=lowest,
                threshold=self.threshold,
            )
        return self.allow(score=None if lowest == float("inf") else lowest)

    def forget(self, identity: str) -> None:
        """Clear one identity's buffer (the paper does this after banning an account)."""
        self._buffers.pop(identity, None)
