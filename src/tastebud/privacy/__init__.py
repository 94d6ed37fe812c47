"""Privacy at every boundary: pseudonyms, field encryption, PII redaction, consent and secrets."""

from __future__ import annotations

from tastebud.privacy.consent import PURPOSES, ConsentPolicy, Purpose
from tastebud.privacy.crypto import FieldCipher
from tastebud.privacy.keyring import Secrets, load_secrets
from tastebud.privacy.pseudonym import Pseudonymizer
from tastebud.privacy.redact import PrivacyFilter, luhn_valid, redact_text, truncate_ip

__all__ = [
    "ConsentPolicy",
    "FieldCipher",
    "PURPOSES",
    "PrivacyFilter",
    "Pseudonymizer",
    "Purpose",
    "Secrets",
    "load_secrets",
    "luhn_valid",
    "redact_text",
    "truncate_ip",
]
