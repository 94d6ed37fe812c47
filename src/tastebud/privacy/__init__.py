"""Privacy at every boundary: pseudonyms, field encryption, PII redaction, consent and secrets;
and the tables that record them (consent and its log, erasure tombstones, the privacy log, the
precomputed list files an erasure rewrites), whose queries this package owns."""

from __future__ import annotations

from tastebud.privacy.consent import PURPOSES, ConsentPolicy, Purpose
from tastebud.privacy.consent_log import ConsentLog, ConsentMark, ConsentRead, LogRow
from tastebud.privacy.crypto import FieldCipher
from tastebud.privacy.gate import ConsentReader, PersonalizationGate
from tastebud.privacy.keyring import Secrets, load_secrets
from tastebud.privacy.pseudonym import Pseudonymizer
from tastebud.privacy.records import BatchOutputs, PrivacyLog
from tastebud.privacy.redact import PrivacyFilter, luhn_valid, redact_text, truncate_ip
from tastebud.privacy.tombstones import Tombstones, erasure_stamp

__all__ = [
    "BatchOutputs",
    "ConsentLog",
    "ConsentMark",
    "ConsentPolicy",
    "ConsentRead",
    "ConsentReader",
    "FieldCipher",
    "LogRow",
    "PURPOSES",
    "PersonalizationGate",
    "PrivacyFilter",
    "PrivacyLog",
    "Pseudonymizer",
    "Purpose",
    "Secrets",
    "Tombstones",
    "erasure_stamp",
    "load_secrets",
    "luhn_valid",
    "redact_text",
    "truncate_ip",
]
