"""PII handling for event payloads and user attributes.

Two mechanisms:

* **Sensitive keys** (configurable, default ``email, phone, ssn, credit_card, password, ip``),
  matched at any depth against the field name and the words in it (``user_email``,
  ``phoneNumber``), are dropped, redacted, encrypted or (IP addresses) truncated to their /24
  (IPv4) or /48 (IPv6) network.
* **Free text** (every string value except identifier fields) is scanned for e-mail addresses,
  phone numbers and Luhn-valid card numbers, which are replaced by ``[email]``, ``[phone]`` and
  ``[card]``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

import orjson

from tastebud.config import SensitiveAction
from tastebud.privacy.crypto import ENCRYPTED_MARKER, FieldCipher

__all__ = ["PrivacyFilter", "key_variants", "luhn_valid", "redact_text", "truncate_ip"]

_CARD = re.compile(r"(?<![\w+\-])\d(?:[ -]?\d){12,18}(?![\w-])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d[\d ().\-]{6,20}\d"  # international: +49 151 1234 5678, +1 (555) 123-4567
    r"|\(?\d{3}\)?[ .\-]\d{3}[ .\-]\d{4}"  # North American: (555) 123-4567, 555.123.4567
    r"|0\d{9,11}"  # national with trunk prefix: 07911123456
    r")(?!\w)"
)
# A string can only hold an address if it has an '@', and a phone or card number only if it has
# at least eight digits: most strings (titles, paths with one id) skip the three scans.
_QUICK = re.compile(r"@|\d(?:\D*\d){7}")
# Identifiers and user agents are not free text: scanning them costs time and mangles ids.
_UNSCANNED_KEYS = frozenset(
    {"item_id", "element_id", "form_id", "list_id", "item_ids", "user_agent", "effective_type"}
)
# What :meth:`PrivacyFilter.scrub` does with a field, decided once per field name: a policy
# action (a string), or one of these two for fields that are not sensitive.
_TEXT = 0  # strings are scanned for PII
_ID = 1  # strings are kept as they are (identifiers, user agents)
_DROPPED = object()  # marks a field the policy drops


def luhn_valid(digits: str) -> bool:
    """Whether a digit string passes the Luhn checksum (as payment card numbers do).

    >>> luhn_valid("4111111111111111"), luhn_valid("4111111111111112")
    (True, False)
    """
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_sub(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return "[card]" if 13 <= len(digits) <= 19 and luhn_valid(digits) else match.group(0)


def _phone_sub(match: re.Match[str]) -> str:
    n = sum(ch.isdigit() for ch in match.group(0))
    return "[phone]" if 8 <= n <= 15 else match.group(0)


def redact_text(text: str) -> str:
    """Replace e-mail addresses, phone numbers and Luhn-valid card numbers in free text.

    >>> redact_text("mail ann@example.com or call +1 (555) 123-4567, card 4111 1111 1111 1111")
    'mail [email] or call [phone], card [card]'
    >>> redact_text("order 1234 shipped 2024-01-15")
    'order 1234 shipped 2024-01-15'
    """
    if not _QUICK.search(text):
        return text
    text = _CARD.sub(_card_sub, text)
    text = _EMAIL.sub("[email]", text)
    return _PHONE.sub(_phone_sub, text)


def truncate_ip(value: str) -> str | None:
    """Truncate an IP address to its /24 (IPv4) or /48 (IPv6) network; ``None`` if not an IP.

    >>> truncate_ip("203.0.113.77"), truncate_ip("2001:db8:abcd:12::1")
    ('203.0.113.0', '2001:db8:abcd::')
    """
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def _norm(key: str) -> str:
    return "".join(ch for ch in key.lower() if ch.isalnum())


_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def key_variants(key: str) -> set[str]:
    """Normalized forms of a field name: the whole name and every run of 1 to 3 of its words.

    ``user_email``, ``contactEmail`` and ``e-mail`` all contain ``email``; ``creditCardNumber``
    contains ``creditcard``; ``iphone_model`` does not contain ``phone`` and ``zip`` not ``ip``.

    >>> sorted(key_variants("creditCard_no"))
    ['card', 'cardno', 'credit', 'creditcard', 'creditcardno', 'no']
    """
    words = [w.lower() for w in _WORD.findall(key)]
    out = {_norm(key)}
    for n in (1, 2, 3):
        for i in range(len(words) - n + 1):
            out.add("".join(words[i : i + n]))
    return out


class PrivacyFilter:
    """Applies the sensitive-key policy and the free-text scan to JSON-like payloads."""

    def __init__(self, policy: Mapping[str, SensitiveAction], cipher: FieldCipher) -> None:
        self._policy = {_norm(k): v for k, v in policy.items()}
        self._cipher = cipher
        self._actions: dict[str, SensitiveAction | None] = {}
        self._plans: dict[str, SensitiveAction | int] = {}
        self._verbatim: set[str] = set()

    def action_for(self, key: str) -> SensitiveAction | None:
        """The policy's action for a field name, or ``None`` if it is not sensitive."""
        try:
            return self._actions[key]
        except KeyError:
            pass
        found = [self._policy[v] for v in key_variants(key) if v in self._policy]
        # The most protective action wins when several names match (e.g. "email_password").
        order: tuple[SensitiveAction, ...] = ("drop", "encrypt", "redact", "truncate")
        action = min(found, key=order.index) if found else None
        if len(self._actions) < 50_000:  # bounded: field names come from clients
            self._actions[key] = action
        return action

    def _sensitive(self, action: SensitiveAction, value: Any) -> tuple[bool, Any]:
        """Returns (keep, new_value)."""
        if action == "drop":
            return False, None
        if action == "truncate":
            truncated = truncate_ip(value) if isinstance(value, str) else None
            return (True, truncated) if truncated is not None else (True, "[redacted]")
        if action == "encrypt":
            if isinstance(value, Mapping) and ENCRYPTED_MARKER in value:
                return True, dict(value)  # already encrypted (e.g. re-processing)
            text = value if isinstance(value, str) else repr(value)
            return True, {ENCRYPTED_MARKER: self._cipher.encrypt(text)}
        return True, "[redacted]"

    def clean(self, payload: Mapping[str, Any], *, scan_text: bool = True) -> dict[str, Any]:
        """A cleaned copy of ``payload``; the input is not modified."""
        # Written for the ingest hot path: exact type checks, cached key decisions, and the
        # regex scan only for strings that could hold an address or a number.
        out: dict[str, Any] = {}
        actions = self._actions
        quick = _QUICK.search
        for key, value in payload.items():
            action = actions[key] if key in actions else self.action_for(key)
            if action is not None:
                keep, value = self._sensitive(action, value)
                if keep:
                    out[key] = value
                continue
            kind = type(value)
            if kind is str:
                if scan_text and quick(value) and key not in _UNSCANNED_KEYS:
                    value = redact_text(value)
            elif kind is dict:
                value = self.clean(value, scan_text=scan_text)
            elif kind is list or isinstance(value, (Mapping, list)):
                value = self._value(key, value, scan_text)
            out[key] = value
        return out

    def _plan(self, key: str) -> SensitiveAction | int:
        """What :meth:`scrub` does with a field name (cached, bounded like :meth:`action_for`)."""
        action = self.action_for(key)
        plan: SensitiveAction | int = (
            action if action is not None else _ID if key in _UNSCANNED_KEYS else _TEXT
        )
        if len(self._plans) < 50_000:
            self._plans[key] = plan
        return plan

    def scrub(self, payload: dict[str, Any]) -> dict[str, Any]:
        """:meth:`clean` for the ingest hot path: the same result, without copying what does not
        change. ``payload`` is never modified; it is itself returned when nothing in it changes,
        and unchanged nested dicts and lists are shared with it.
        """
        # One cached decision per field name (policy action, or whether its strings are free
        # text), and a new dict only when a field is dropped or its value changes: most
        # payloads hold no PII and are returned as they are.
        plans = self._plans
        quick = _QUICK.search
        changes: dict[str, Any] | None = None
        new: Any
        for key, value in payload.items():
            plan = plans.get(key)
            if plan is None:
                plan = self._plan(key)
            kind = type(value)
            if isinstance(plan, int):
                if kind is str:
                    if plan == _ID or quick(value) is None:
                        continue
                    new = redact_text(value)
                elif kind is dict:
                    new = self.scrub(value)
                elif kind is list:
                    new = self._scrub_list(key, value, plan == _TEXT)
                elif isinstance(value, (Mapping, list)):
                    new = self._value(key, value, True)
                else:
                    continue
                if new is value:
                    continue
            else:
                keep, new = self._sensitive(plan, value)
                if not keep:
                    new = _DROPPED
            if changes is None:
                changes = {}
            changes[key] = new
        if changes is None:
            return payload
        out: dict[str, Any] = {}
        for key, value in payload.items():
            if key in changes:
                value = changes[key]
                if value is _DROPPED:
                    continue
            out[key] = value
        return out

    def scrub_json(self, payload: dict[str, Any]) -> str | None:
        """:meth:`scrub`, serialized to JSON text (``None`` if nothing is left), for payloads
        that repeat, such as an event's context (the same device, locale and network for a
        whole session).

        The JSON texts of payloads that the policy leaves exactly as they are (no sensitive
        field, no PII found) are remembered, so a payload seen before costs one serialization
        and one lookup. Only such texts are remembered: they are stored verbatim anyway, and a
        payload with anything to drop, redact or encrypt is cleaned afresh every time (fresh
        ciphertexts included).
        """
        if not payload:
            return None
        text = orjson.dumps(payload).decode()
        known = self._verbatim
        if text in known:
            return text
        scrubbed = self.scrub(payload)
        if scrubbed is payload:
            if len(known) >= 20_000:  # bounded: cleared whole, as the pseudonym cache
                known.clear()
            known.add(text)
            return text
        return orjson.dumps(scrubbed).decode() if scrubbed else None

    def _scrub_list(self, key: str, values: list[Any], scan: bool) -> list[Any]:
        """:meth:`_value` for a list under a non-sensitive key, returned as is if unchanged."""
        out: list[Any] | None = None
        new: Any
        for i, value in enumerate(values):
            kind = type(value)
            if kind is str:
                new = redact_text(value) if scan else value
            elif kind is dict:
                new = self.scrub(value)
            elif kind is list:
                new = self._scrub_list(key, value, scan)
            elif isinstance(value, (Mapping, list, str)):
                new = self._value(key, value, True)
            else:
                continue
            if new is not value:
                if out is None:
                    out = list(values)
                out[i] = new
        return values if out is None else out

    def _value(self, key: str, value: Any, scan_text: bool) -> Any:
        if isinstance(value, str):
            return redact_text(value) if scan_text and key not in _UNSCANNED_KEYS else value
        if isinstance(value, Mapping):
            return self.clean(value, scan_text=scan_text)
        if isinstance(value, list):
            return [self._value(key, v, scan_text) for v in value]
        return value

    def decrypt(self, payload: Any) -> Any:
        """A copy of ``payload`` with every encrypted field decrypted (for export)."""
        if isinstance(payload, Mapping):
            if set(payload) == {ENCRYPTED_MARKER}:
                return self._cipher.decrypt(str(payload[ENCRYPTED_MARKER]))
            return {k: self.decrypt(v) for k, v in payload.items()}
        if isinstance(payload, list):
            return [self.decrypt(v) for v in payload]
        return payload
