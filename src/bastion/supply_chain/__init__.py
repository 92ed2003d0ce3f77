"""ML is software: model-file scanning, dependency audits and integrity manifests.

This package reads bytes; it never deserialises, imports or runs what it inspects.
"""

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
