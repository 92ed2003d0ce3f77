"""Blacklight: detect query attacks by near-duplicate queries across all identities.

Li, Shan, Wenger, Zhang, Zheng, Zhao, "Blacklight: Scalable Defense for Neural Networks
against Query-Based Black-Box Attacks", USENIX Security 2022.

An iterative black-box attack (Square Attack, HopSkipJump, NES, ...) must send many queries
that differ from one another only slightly. Blacklight quantizes every query, hashes each
sliding window of the quantized pixel sequence, keeps the ``top_n`` largest hashes as the
query's fingerprint, and flags a query whose fingerprint shares at least ``threshold`` hashes
with any earlier query. The index is shared by every identity, so an attack split across many
accounts is still seen. The quantization bins and the hashes are salted with a secret, so an
attacker cannot compute a fingerprint offline.

The paper's parameters, for 8-bit pixels: quantization step 50, window 20 (50 on MNIST's 784
pixels and on ImageNet), top 50 hashes, match threshold 25 (half the fingerprint). An 8x8
digit has 64 pixels instead of 784, and most of them are blank background, so the paper's
window and fingerprint would either see only background or leave too few hashes.
`for_input_size` scales them: the step stays 50/255 of the input range; the window is an
eighth of the pixel sequence, capped at the paper's 50 (one row of an 8x8 digit, MNIST's 50);
the fingerprint keeps 70% of the windows, capped at 50 (40 of 57 on the digits); the
threshold stays half the fingerprint (20). Measured on the 1,797 embedded digits with
Gaussian noise (sigma 0.02) sent in sequence: 1 flagged (0.06%); random-search attack queries
flagged from the second query on (tests/unit/defenses/test_guards_quality.py).

Re-sends, an extension not in the paper: the paper flags a query on its first near-duplicate,
so a client that sends the same input again (a retry, a user re-uploading a photo) is
flagged too: on a stream of the embedded digits, each sent one to three times with fresh
sensor noise, 19% of the requests. ``min_matches`` asks for that many distinct
earlier near-duplicates before flagging; an attack's queries near-duplicate nearly all of
its earlier ones, so Square Attack is then flagged at about its ``min_matches + 1``-th query
instead of its second (bench/gateway_detection.py measures both settings).
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections import Counter, deque

import numpy as np
import torch

from bastion.core.validation import check_bounds, check_int, check_number, check_type
from bastion.defenses.guards.interface import Action, Guard, Query, Verdict

__all__ = ["BlacklightGuard"]

#: The paper's quantization step on 0..255 pixels, as a share of the input range.
PAPER_STEP = 50 / 255
PAPER_TOP_N = 50


class BlacklightGuard(Guard):
    """Flag queries whose salted, quantized window hashes match an earlier query's (Li et al.).

    Args:
        bounds: the input range ``(low, high)``; pixels are quantized on it.
        quantization_step: bin width as a share of the range (paper: 50/255).
        window: pixels per hashed window of the flattened input.
        top_n: how many of the largest window hashes form the fingerprint.
        threshold: shared hashes that make an earlier query a near-duplicate of this one.
        min_matches: earlier near-duplicates a query needs to be flagged (paper: 1). With
            ``m`` a client may send an input ``m`` times (a re-send, a retry) unflagged, while
            an attack, whose every query near-duplicates many earlier ones, is still flagged
            from about its ``m + 1``-th query. Not in the paper (see the module docstring).
        salt: the secret (bytes); a fresh random one by default. Keep it private.
        max_queries: how many fingerprints the index keeps (oldest dropped first).
        action: what to do with a flagged query.
    """

    name = "blacklight"

    def __init__(
        self,
        *,
        bounds: tuple[float, float] = (0.0, 1.0),
        quantization_step: float = PAPER_STEP,
        window: int = 20,
        top_n: int = PAPER_TOP_N,
        threshold: int = 25,
        min_matches: int = 1,
        salt: bytes | None = None,
        max_queries: int = 1_000_000,
        action: Action | str = Action.FLAG,
    ) -> None:
        super().__init__(action=action)
        self.bounds = check_bounds("bounds", bounds)
        self.quantization_step = check_number(
            "quantization_step", quantization_step, low=0, high=1, low_open=True
        )
        self.window = check_int("window", window, low=1)
        self.top_n = check_int("top_n", top_n, low=1)
        self.threshold = check_int("threshold", threshold, low=1, high=self.top_n)
        self.min_matches = check_int("min_matches", min_matches, low=1)
        self.max_queries = check_int("max_queries", max_queries, low=1)
        key = secrets.token_bytes(32) if salt is None else check_type("salt", salt, bytes)
        self._key = hashlib.sha256(b"blacklight-key" + key).digest()
        self._salt_seed = int.from_bytes(hashlib.sha256(b"blacklight-bins" + key).digest()[:8])
        self._offsets: np.ndarray | None = None
        self._index: dict[int, set[int]] = {}
        self._order: deque[tuple[int, tuple[int, ...]]] = deque()
        self._next_id = 0
        self._owner: dict[int, str] = {}

    @classmethod
    def for_input_size(cls, pixels: int, **kwargs: object) -> BlacklightGuard:
        """Paper parameters scaled to inputs of ``pixels`` values (see the module docstring)."""
        pixels = check_int("pixels", pixels, low=2)
        window = min(50, max(2, math.ceil(pixels / 8)))
        top_n = min(PAPER_TOP_N, max(1, round(0.7 * (pixels - window + 1))))
        defaults: dict[str, object] = {
            "window": window,
            "top_n": top_n,
            "threshold": max(1, top_n // 2),
        }
        defaults.update(kwargs)
        return cls(**defaults)  # type: ignore[arg-type]

    def fingerprint(self, sample: torch.Tensor) -> tuple[int, ...]:
        """The ``top_n`` largest salted window hashes of one sample, largest first."""
        flat = sample.detach().reshape(-1).to(torch.float64).cpu().numpy()
        offsets = self._offsets
        if offsets is None or offsets.shape[0] != flat.shape[0]:
            # Secret per-pixel offsets move the bin edges, so an attacker cannot keep a
            # perturbation inside one bin on purpose.
            rng = np.random.default_rng(self._salt_seed)
            fresh = np.asarray(rng.uniform(0.0, self.quantization_step, size=flat.shape[0]))
            self._offsets = offsets = fresh
        low, high = self.bounds
        scaled = (flat - low) / (high - low) + offsets
        quantized = np.floor(scaled / self.quantization_step).astype(np.int16)
        data = quantized.astype("<i2").tobytes()
        width = 2 * self.window
        hashes = {
            int.from_bytes(
                hashlib.blake2b(data[i : i + width], digest_size=8, key=self._key).digest()
            )
            for i in range(0, len(data) - width + 1, 2)
        }
        return tuple(sorted(hashes, reverse=True)[: self.top_n])

    def _match(self, prints: tuple[int, ...]) -> tuple[int, int, int]:
        """The closest earlier query, the hashes it shares, and how many are near-duplicates."""
        counts: Counter[int] = Counter()
        for h in prints:
            counts.update(self._index.get(h, ()))
        if not counts:
            return -1, 0, 0
        qid, shared = counts.most_common(1)[0]
        near = sum(1 for c in counts.values() if c >= self.threshold)
        return qid, shared, near

    def _insert(self, prints: tuple[int, ...], identity: str) -> None:
        qid = self._next_id
        self._next_id += 1
        for h in prints:
            self._index.setdefault(h, set()).add(qid)
        self._order.append((qid, prints))
        self._owner[qid] = identity
        while len(self._order) > self.max_queries:
            old, old_prints = self._order.popleft()
            self._owner.pop(old, None)
            for h in old_prints:
                bucket = self._index.get(h)
                if bucket is not None:
                    bucket.discard(old)
                    if not bucket:
                        del self._index[h]

    def check(self, query: Query) -> Verdict:
        """Match each sample against the shared index, then add it; fire on any match."""
        x = self._batch(query)
        best_shared, best_owner, hits, most = 0, "", 0, 0
        for sample in x:
            prints = self.fingerprint(sample)
            qid, shared, near = self._match(prints)
            most = max(most, near)
            if near >= self.min_matches:
                hits += 1
            if shared > best_shared:
                best_shared, best_owner = shared, self._owner.get(qid, "")
            self._insert(prints, query.identity)
        evidence = {"max_shared": best_shared, "threshold": self.threshold, "matches": most}
        if hits:
            return self.fire(
                f"{hits} sample(s) near-duplicate {most} earlier quer{'y' if most == 1 else 'ies'} "
                f"({best_shared} of {self.top_n} hashes shared)",
                matched_samples=hits,
                earlier_identity=best_owner,
                **evidence,
            )
        return self.allow(**evidence)

    def reset(self) -> None:
        """Empty the index (the paper resets it periodically, e.g. daily)."""
        self._index.clear()
        self._order.clear()
        self._owner.clear()

    def __len__(self) -> int:
        return len(self._order)
