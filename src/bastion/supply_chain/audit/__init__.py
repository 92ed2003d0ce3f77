"""Known-vulnerable components and unsafe loading calls: the API behind ``bastion audit``.

Offline first: advisories in the OSV format come from the embedded ML-stack snapshot, the
user's local copy (`update_database`), or a directory/zip/JSON file given explicitly.
"""

from bastion.supply_chain.audit.audit import AuditReport, Vulnerability, audit
from bastion.supply_chain.audit.database import (
    AdvisoryDatabase,
    default_database,
    embedded_database,
    load_database,
    local_database_path,
    update_database,
    user_data_dir,
)
from bastion.supply_chain.audit.inventory import (
    Dependency,
    installed_distributions,
    read_lock_file,
    read_requirements,
    site_packages_of,
)
from bastion.supply_chain.audit.osv import (
    Advisory,
    AdvisoryDatabaseError,
    cvss3_base_score,
    normalize_name,
    parse_advisory,
)
from bastion.supply_chain.audit.patterns import RULES, PatternFinding, Rule, scan_paths, scan_source
from bastion.supply_chain.audit.sarif import to_sarif

__all__ = [
    "RULES",
    "Advisory",
    "AdvisoryDatabase",
    "AdvisoryDatabaseError",
    "AuditReport",
    "Dependency",
    "PatternFinding",
    "Rule",
    "Vulnerability",
    "audit",
    "cvss3_base_score",
    "default_database",
    "embedded_database",
    "installed_distributions",
    "load_database",
    "local_database_path",
    "normalize_name",
    "parse_advisory",
    "read_lock_file",
    "read_requirements",
    "scan_paths",
    "scan_source",
    "site_packages_of",
    "to_sarif",
    "update_database",
    "user_data_dir",
]
