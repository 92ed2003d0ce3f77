"""The hardened prediction gateway behind ``bastion serve``: the only package importing FastAPI.

`create_app` builds the app from `GatewaySettings`; `Store` holds keys and the audit trail.
"""

from bastion.gateway.app import SETTINGS_ENV, app_from_environment, create_app
from bastion.gateway.loader import Served, load_served
from bastion.gateway.pipeline import Outcome, Pipeline
from bastion.gateway.settings import GatewaySettings, GuardSettings, OutputSettings, load_settings
from bastion.gateway.store import KeyInfo, Principal, Store, hash_key

__all__ = [
    "SETTINGS_ENV",
    "GatewaySettings",
    "GuardSettings",
    "KeyInfo",
    "Outcome",
    "OutputSettings",
    "Pipeline",
    "Principal",
    "Served",
    "Store",
    "app_from_environment",
    "create_app",
    "hash_key",
    "load_served",
    "load_settings",
]
