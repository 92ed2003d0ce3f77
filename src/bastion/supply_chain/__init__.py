"""ML is software: model-file scanning, dependency audits and integrity manifests.

This package reads bytes; it never deserialises, imports or runs what it inspects.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bastion.supply_chain.audit import (
        AdvisoryDatabase,
        AdvisoryDatabaseError,
        AuditReport,
        Vulnerability,
        audit,
        default_database,
        embedded_database,
        load_database,
        scan_source,
        update_database,
    )
    from bastion.supply_chain.manifest import (
        ManifestProblem,
        ManifestVerification,
        create_manifest,
        generate_keypair,
        load_private_key,
        load_public_key,
        verify_manifest,
    )
    from bastion.supply_chain.scan import (
        OutputFormat,
        ScanError,
        ScanIssue,
        ScanReport,
        Verdict,
        render,
        scan_file,
        scan_paths,
    )

#: public name -> the submodule it lives in; imported on first use, so that ``bastion scan``
#: does not pay for the audit's and the manifest's imports (and the reverse).
_EXPORTS: dict[str, str] = {
    "AdvisoryDatabase": "bastion.supply_chain.audit",
    "AdvisoryDatabaseError": "bastion.supply_chain.audit",
    "AuditReport": "bastion.supply_chain.audit",
    "ManifestProblem": "bastion.supply_chain.manifest",
    "ManifestVerification": "bastion.supply_chain.manifest",
    "OutputFormat": "bastion.supply_chain.scan",
    "ScanError": "bastion.supply_chain.scan",
    "ScanIssue": "bastion.supply_chain.scan",
    "ScanReport": "bastion.supply_chain.scan",
    "Verdict": "bastion.supply_chain.scan",
    "Vulnerability": "bastion.supply_chain.audit",
    "audit": "bastion.supply_chain.audit",
    "create_manifest": "bastion.supply_chain.manifest",
    "default_database": "bastion.supply_chain.audit",
    "embedded_database": "bastion.supply_chain.audit",
    "generate_keypair": "bastion.supply_chain.manifest",
    "load_database": "bastion.supply_chain.audit",
    "load_private_key": "bastion.supply_chain.manifest",
    "load_public_key": "bastion.supply_chain.manifest",
    "render": "bastion.supply_chain.scan",
    "scan_file": "bastion.supply_chain.scan",
    "scan_paths": "bastion.supply_chain.scan",
    "scan_source": "bastion.supply_chain.audit",
    "update_database": "bastion.supply_chain.audit",
    "verify_manifest": "bastion.supply_chain.manifest",
}


def __getattr__(name: str) -> Any:
    """Import a public name from its submodule on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the lazily imported ones included."""
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "AdvisoryDatabase",
    "AdvisoryDatabaseError",
    "AuditReport",
    "ManifestProblem",
    "ManifestVerification",
    "OutputFormat",
    "ScanError",
    "ScanIssue",
    "ScanReport",
    "Verdict",
    "Vulnerability",
    "audit",
    "create_manifest",
    "default_database",
    "embedded_database",
    "generate_keypair",
    "load_database",
    "load_private_key",
    "load_public_key",
    "render",
    "scan_file",
    "scan_paths",
    "scan_source",
    "update_database",
    "verify_manifest",
]
