"""Unit tests of the runtime guards: interface, rate limits, input validation, output policy."""

from __future__ import annotations

import json
import math

import pytest
import torch

from bastion.core.errors import (
    BoundsError,
    ConfigError,
    NonFiniteError,
    ShapeError,
    ValidationError,
)
from bastion.defenses.guards import (
    Action,
    BlacklightGuard,
    BoundaryGuard,
    InputGuard,
    NearestNeighbourGuard,
    OutputPolicy,
    Query,
    RateLimitGuard,
    Verdict,
    client_address,
    json_depth,
    strongest,
)


def test_action_parse_and_order() -> None:
    assert Action.parse("block") is Action.BLOCK
    assert Action.ALLOW.rank < Action.RECORD.rank < Action.FLAG.rank < Action.SLOW.rank
    assert Action.SLOW.rank < Action.BLOCK.rank
    with pytest.raises(ValidationError, match="action"):
        Action.parse("explode")
    with pytest.raises(ValidationError, match="action"):
        RateLimitGuard(action="allow")


def test_strongest_and_verdict_dict() -> None:
    verdicts = [Verdict("a", Action.RECORD), Verdict("b", Action.SLOW, "why", {"n": 1})]
    assert strongest(verdicts) is Action.SLOW
    assert strongest([]) is Action.ALLOW
    assert verdicts[1].as_dict() == {
        "guard": "b",
        "action": "slow",
        "reason": "why",
        "evidence": {"n": 1},
    }
    assert verdicts[1].fired and not Verdict("c", Action.ALLOW).fired


# --- rate limits --------------------------------------------------------------------------
def test_rate_limit_blocks_after_limit_with_retry_after() -> None:
    guard = RateLimitGuard(limit="3/minute")
    outcomes = [guard.check(Query(identity="alice")).action for _ in range(4)]
    assert outcomes == [Action.ALLOW] * 3 + [Action.BLOCK]
    blocked = guard.check(Query(identity="alice"))
    assert 1 <= blocked.evidence["retry_after"] <= 60
    # another identity has its own bucket
    assert guard.check(Query(identity="bob")).action is Action.ALLOW


def test_rate_limit_charges_each_sample_of_a_batch() -> None:
    guard = RateLimitGuard(limit="5/minute")
    assert not guard.check(Query(identity="a", x=torch.zeros(4, 2))).fired
    assert guard.check(Query(identity="a", x=torch.zeros(2, 2))).fired
    assert not guard.check(Query(identity="a", x=torch.zeros(1, 2))).fired


def test_rate_limit_per_address() -> None:
    guard = RateLimitGuard(limit="1/minute", per="address")
    assert not guard.check(Query(identity="a", address="10.0.0.1")).fired
    assert guard.check(Query(identity="b", address="10.0.0.1")).fired
    assert guard.name == "rate-limit-address"


def test_rate_limit_memory_store_starts_no_timer_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stock in-memory store starts a sweeper thread after almost every hit."""
    import threading

    guard = RateLimitGuard(limit="1000/minute")
    started: list[object] = []
    real_timer = threading.Timer

    def counting_timer(*args: object, **kwargs: object) -> threading.Timer:
        started.append(args)
        return real_timer(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(threading, "Timer", counting_timer)
    for i in range(200):
        assert not guard.check(Query(identity=f"user-{i % 7}")).fired
    assert started == []


def test_rate_limit_memory_store_sweeps_expired_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.defenses.guards import ratelimit

    monkeypatch.setattr(ratelimit, "SWEEP_EVERY_S", 0.0)
    guard = RateLimitGuard(limit="2/second")
    for i in range(20):
        guard.check(Query(identity=f"gone-{i}"))
    events = guard._storage.events
    assert len(events) == 20
    import time

    time.sleep(1.1)
    guard.check(Query(identity="fresh"))
    assert len(events) == 1
    assert "fresh" in next(iter(events))


def test_rate_limit_rejects_bad_config() -> None:
    with pytest.raises(ValidationError, match="limit"):
        RateLimitGuard(limit="lots")
    with pytest.raises(ValidationError, match="per"):
        RateLimitGuard(per="planet")
    with pytest.raises(ConfigError, match="storage_uri"):
        RateLimitGuard(storage_uri="nosuch://x")


def test_forwarded_for_honoured_only_from_trusted_proxies() -> None:
    trusted = ["10.0.0.0/8"]
    # an untrusted peer cannot name its own address
    assert client_address("203.0.113.5", "1.2.3.4", trusted) == "203.0.113.5"
    # a trusted proxy's forwarded address is used; proxies in the chain are skipped
    assert client_address("10.0.0.2", "198.51.100.7", trusted) == "198.51.100.7"
    assert client_address("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.1.1.1", trusted) == (
        "198.51.100.7"
    )
    assert client_address("10.0.0.2", None, trusted) == "10.0.0.2"
    assert client_address("10.0.0.2", "garbage", trusted) == "10.0.0.2"
    assert client_address("10.0.0.2", "198.51.100.7", []) == "10.0.0.2"
    with pytest.raises(ValidationError, match=r"trusted_proxies\[0\]"):
        client_address("1.1.1.1", "2.2.2.2", ["not-an-ip"])


# --- input validation ---------------------------------------------------------------------
@pytest.fixture()
def input_guard() -> InputGuard:
    return InputGuard(input_shape=(1, 2, 2), bounds=(0.0, 1.0), max_batch=3, max_body_bytes=500)


def _body(inputs: object) -> bytes:
    return json.dumps({"inputs": inputs}).encode()


def test_input_guard_accepts_a_batch_and_a_single_sample(input_guard: InputGuard) -> None:
    sample = [[[0.1, 0.2], [0.3, 0.4]]]
    assert input_guard.parse(_body([sample, sample])).shape == (2, 1, 2, 2)
    assert input_guard.parse(_body(sample)).shape == (1, 1, 2, 2)


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        (b"{not json", ValidationError, "not JSON"),
        (b'{"x": 1}', ValidationError, "inputs"),
        (b"[1, 2]", ValidationError, "JSON object"),
        (_body([[[0.1, 0.2, 0.3]]]), ShapeError, "shape"),
        (_body([[["a", "b"], ["c", "d"]]]), ValidationError, "only numbers"),
        (_body([[[True, False], [True, True]]]), ValidationError, "only numbers"),
        (_body([[[0.1, 0.2], [0.3]]]), ValidationError, "rectangular|ragged"),
        (b'{"inputs": [[[NaN, 0.2], [0.3, 0.4]]]}', NonFiniteError, "finite"),
        (b'{"inputs": [[[Infinity, 0.2], [0.3, 0.4]]]}', NonFiniteError, "finite"),
        (_body([[[2.0, 0.2], [0.3, 0.4]]]), BoundsError, "bounds"),
        (_body([[[[0.1, 0.2], [0.3, 0.4]]]] * 4), ValidationError, "at most 3 samples"),
        (b"[" * 50 + b"]" * 50, ValidationError, "nested"),
        (b" " * 501, ValidationError, "at most 500 bytes"),
    ],
)
def test_input_guard_refuses_bad_bodies(
    input_guard: InputGuard, body: bytes, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        input_guard.parse(body)
    verdict, batch = input_guard.inspect(body)
    assert verdict.action is Action.BLOCK and batch is None and verdict.reason


def test_json_depth_ignores_brackets_in_strings() -> None:
    assert json_depth(b'{"a": [[1], "[[[[{"]}') == 3
    assert json_depth(b'"\\"[[["') == 0


def test_input_guard_check_on_tensors(input_guard: InputGuard) -> None:
    assert not input_guard.check(Query(identity="a", x=torch.zeros(1, 1, 2, 2))).fired
    assert input_guard.check(Query(identity="a", x=torch.zeros(1, 1, 3, 3))).fired
    assert input_guard.check(Query(identity="a", x=torch.full((1, 1, 2, 2), 5.0))).fired


# --- output policy ------------------------------------------------------------------------
def test_output_policy_modes() -> None:
    scores = torch.tensor([[0.1234, 0.8, 0.0766]])
    assert OutputPolicy(mode="label").render(scores) == [{"label": 1}]
    top = OutputPolicy(mode="top-k", k=2, decimals=1).render(scores)
    assert top == [{"label": 1, "top": [{"label": 1, "score": 0.8}, {"label": 0, "score": 0.1}]}]
    full = OutputPolicy(mode="scores", decimals=2).render(scores)
    assert full == [{"label": 1, "scores": [0.12, 0.8, 0.08]}]
    with pytest.raises(ValidationError, match="mode"):
        OutputPolicy(mode="everything")


# --- stateful detectors: mechanics ---------------------------------------------------------
def test_blacklight_matches_across_identities_and_salt_matters() -> None:
    guard = BlacklightGuard.for_input_size(64, salt=b"s")
    assert (guard.window, guard.top_n, guard.threshold) == (8, 40, 20)
    paper = BlacklightGuard.for_input_size(784)
    assert (paper.window, paper.top_n, paper.threshold) == (50, 50, 25)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 8, 8, generator=gen)
    assert not guard.check(Query(identity="a", x=x)).fired
    again = guard.check(Query(identity="b", x=x.clone()))
    assert again.fired and again.evidence["earlier_identity"] == "a"
    other = BlacklightGuard.for_input_size(64, salt=b"t")
    assert guard.fingerprint(x[0]) != other.fingerprint(x[0])
    assert len(guard) == 2
    guard.reset()
    assert len(guard) == 0 and not guard.check(Query(identity="c", x=x)).fired


def test_blacklight_index_is_bounded() -> None:
    guard = BlacklightGuard.for_input_size(64, salt=b"s", max_queries=5)
    gen = torch.Generator().manual_seed(0)
    first = torch.rand(1, 1, 8, 8, generator=gen)
    guard.check(Query(identity="a", x=first))
    guard.check(Query(identity="a", x=torch.rand(5, 1, 8, 8, generator=gen)))
    assert len(guard) == 5
    assert not guard.check(Query(identity="a", x=first)).fired  # evicted


def test_nearest_neighbour_needs_k_queries_and_forgets() -> None:
    guard = NearestNeighbourGuard(k=3, threshold=0.5)
    x = torch.zeros(1, 4)
    assert [guard.check(Query(identity="a", x=x)).fired for _ in range(4)] == [
        False,
        False,
        False,
        True,
    ]
    assert not guard.check(Query(identity="b", x=x)).fired
    guard.forget("a")
    assert not guard.check(Query(identity="a", x=x)).fired
    projected = NearestNeighbourGuard(k=2, projection_dim=3)
    assert projected.features(torch.ones(5, 8)).shape == (5, 3)
    with pytest.raises(ValidationError, match="more than k=3"):
        NearestNeighbourGuard(k=3).calibrate(torch.zeros(3, 4))


def test_boundary_cusum_flags_runs_of_small_margins_only() -> None:
    guard = BoundaryGuard(near_margin=0.1, near_quantile=0.05, attack_rate=0.5, false_alarm=1e-4)
    assert guard.limit == pytest.approx(math.log(1e4))
    near = torch.tensor([[0.52, 0.48]])
    far = torch.tensor([[0.95, 0.05]])
    # a far answer between near ones pulls the statistic down
    for _ in range(20):
        assert not guard.check(Query(identity="benign", x=None, scores=far)).fired
    fired = [guard.check(Query(identity="probe", scores=near)).fired for _ in range(5)]
    assert fired == [False, False, False, True, True]
    assert guard.statistic("benign") == 0.0
    with pytest.raises(ValidationError, match="scores"):
        guard.check(Query(identity="x"))
    with pytest.raises(ValidationError, match="attack_rate"):
        BoundaryGuard(near_quantile=0.5, attack_rate=0.1)
