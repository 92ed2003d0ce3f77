"""Runtime guards: checks on each prediction request, usable with or without the gateway.

Each guard answers a `Query` with a `Verdict` whose `Action` (record, flag, slow, block) is
configured per guard. Guards import only `bastion.core` and `bastion.models`.
"""

from bastion.defenses.guards.blacklight import BlacklightGuard
from bastion.defenses.guards.boundary import BoundaryGuard, top2_margin
from bastion.defenses.guards.interface import Action, Guard, Query, Verdict, strongest
from bastion.defenses.guards.neighbours import NearestNeighbourGuard
from bastion.defenses.guards.output import OUTPUT_MODES, OutputPolicy
from bastion.defenses.guards.prada import PradaGuard
from bastion.defenses.guards.ratelimit import (
    RateLimitGuard,
    RateLimitStorageError,
    client_address,
    redact_uri,
)
from bastion.defenses.guards.validation import InputGuard, json_depth

__all__ = [
    "OUTPUT_MODES",
    "Action",
    "BlacklightGuard",
    "BoundaryGuard",
    "Guard",
    "InputGuard",
    "NearestNeighbourGuard",
    "OutputPolicy",
    "PradaGuard",
    "Query",
    "RateLimitGuard",
    "RateLimitStorageError",
    "Verdict",
    "client_address",
    "redact_uri",
    "json_depth",
    "strongest",
    "top2_margin",
]
