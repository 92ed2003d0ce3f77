"""Defenses: what stops the attacker.

``bastion.defenses.guards`` holds the run-time guards (rate limits, input validation,
query-attack and boundary-proximity detectors, output hardening) that the gateway applies;
they import only ``bastion.core`` and ``bastion.models``.
"""
