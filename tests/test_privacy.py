"""Privacy at the ingest boundary: pseudonyms, PII redaction, encryption, minimisation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from tastebud.privacy import FieldCipher, PrivacyFilter, Pseudonymizer, luhn_valid, redact_text
from tastebud.store.tables import metadata

from conftest import Api, event


def dump_database(api: Api) -> str:
    """Every value of every table, as text (what an attacker with the database would see)."""
    parts: list[str] = []
    with api.services.store.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                parts.append(repr(tuple(row)))
    return "\n".join(parts)


def test_email_in_search_query_never_reaches_the_database(api: Api) -> None:
    ev = event(
        "search",
        user="bob.smith@corp.example",
        data={
            "query": "reset password for bob.smith@corp.example asap",
            "note": "call me on +44 20 7946 0958 or pay 4111 1111 1111 1111",
        },
        context={"url": "https://x.example/?email=bob.smith@corp.example"},
    )
    assert api.request("POST", "/v1/events", "ingest", json=ev).status_code == 202
    dump = dump_database(api)
    assert "bob.smith@corp.example" not in dump
    assert "20 7946 0958" not in dump and "4111 1111" not in dump
    row = api.services.store.get_event(ev["event_id"])
    assert row is not None
    assert row["data"]["query"] == "reset password for [email] asap"
    assert row["data"]["note"] == "call me on [phone] or pay [card]"
    assert row["context"]["url"] == "https://x.example/?email=[email]"


def test_raw_user_ids_are_not_stored(api: Api) -> None:
    raw_ids = ["user-raw-8f2k", "anon-raw-77q"]
    api.request("POST", "/v1/events", "ingest", json=event(user=raw_ids[0]))
    anon = event(anonymous_id=raw_ids[1])
    del anon["user_id"]
    api.request("POST", "/v1/events", "ingest", json=anon)
    api.request("PUT", f"/v1/users/{raw_ids[0]}", json={"segment": "pro"})
    api.request("PUT", f"/v1/users/{raw_ids[0]}/consent", "ingest", json={"analytics": True})
    api.request("POST", f"/v1/users/{raw_ids[0]}/aliases", json={"anonymous_id": raw_ids[1]})
    dump = dump_database(api)
    assert api.services.store.count_events() == 2
    for raw in raw_ids:
        assert raw not in dump
    assert api.services.pseudonymizer.user(raw_ids[0]) in dump


def test_sensitive_fields_are_encrypted_or_dropped(api: Api) -> None:
    ev = event(
        "form_submit",
        data={
            "form_id": "signup",
            "fields": {"Email": "eve@example.org", "password": "hunter2", "plan": "pro"},
        },
        context={"ip": "203.0.113.77"},
    )
    assert api.request("POST", "/v1/events", "ingest", json=ev).status_code == 202
    row = api.services.store.get_event(ev["event_id"])
    assert row is not None
    fields = row["data"]["fields"]
    assert "password" not in fields and fields["plan"] == "pro"
    assert set(fields["Email"]) == {"$enc"}
    assert "ip" not in (row["context"] or {})
    token = fields["Email"]["$enc"]
    assert api.services.cipher.decrypt(token) == "eve@example.org"
    other = FieldCipher([Fernet.generate_key()])
    with pytest.raises(ValueError, match="no configured key"):
        other.decrypt(token)
    dump = dump_database(api)
    assert "eve@example.org" not in dump and "hunter2" not in dump and "203.0.113" not in dump


def test_ip_truncation_when_configured(make_api: Any, make_settings: Any) -> None:
    api = make_api(make_settings(sensitive_fields={"ip": "truncate", "email": "redact"}))
    ev = event(context={"ip": "2001:db8:abcd:12::1"}, data={"email": "a@b.example"})
    api.request("POST", "/v1/events", "ingest", json=ev)
    row = api.services.store.get_event(ev["event_id"])
    assert row is not None
    assert row["context"]["ip"] == "2001:db8:abcd::"
    assert row["data"]["email"] == "[redacted]"


def test_user_attributes_follow_the_policy(api: Api) -> None:
    api.request(
        "PUT",
        "/v1/users/u1",
        json={"segment": "a", "email": "u1@example.com", "phone_number": "+1 555 123 4567"},
    )
    row = api.services.catalog.users.get(api.services.pseudonymizer.user("u1"))
    assert row is not None
    assert set(row["attributes"]["email"]) == {"$enc"}
    assert set(row["attributes"]["phone_number"]) == {"$enc"}
    assert "u1@example.com" not in dump_database(api)
    assert "555 123" not in dump_database(api)


@pytest.mark.parametrize(
    ("key", "action"),
    [
        ("email", "encrypt"),
        ("E-Mail", "encrypt"),
        ("user_email", "encrypt"),
        ("contactEmail", "encrypt"),
        ("phone_number", "encrypt"),
        ("creditCardNumber", "drop"),
        ("credit-card", "drop"),
        ("SSN", "drop"),
        ("new_password", "drop"),
        ("client_ip", "drop"),
        ("iphone_model", None),
        ("zip", None),
        ("description", None),
        ("tip", None),
        ("email_password", "drop"),
    ],
)
def test_sensitive_field_matching(key: str, action: str | None) -> None:
    from tastebud.config import Settings

    f = PrivacyFilter(Settings().sensitive_fields, FieldCipher([Fernet.generate_key()]))
    assert f.action_for(key) == action


def test_key_rotation_keeps_old_tokens_readable() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    token = FieldCipher([old]).encrypt("secret")
    rotated_cipher = FieldCipher([new, old])
    assert rotated_cipher.decrypt(token) == "secret"
    fresh = rotated_cipher.rotate(token)
    assert FieldCipher([new]).decrypt(fresh) == "secret"
    with pytest.raises(ValueError):
        FieldCipher([old]).decrypt(fresh)


def test_pseudonyms_depend_on_the_key() -> None:
    a, b = Pseudonymizer(b"a" * 32), Pseudonymizer(b"b" * 32)
    assert a.user("u") != b.user("u")
    assert a.user("u") != a.anonymous("u")
    import hashlib

    assert a.user("u") not in hashlib.sha256(b"u").hexdigest()  # not the seed's plain hash
    assert "a" * 32 not in repr(a)


@pytest.mark.parametrize(
    "text",
    [
        "order 12345 shipped on 2024-01-15 at 10:30",
        "version 3.14.159 build 20240115",
        "room 101, floor 3",
        "ISBN 978-3-16-148410-0",
    ],
)
def test_redaction_leaves_ordinary_numbers_alone(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail Ann.Lee+news@mail.example.co.uk now", "mail [email] now"),
        ("card 4012-8888-8888-1881 ok", "card [card] ok"),
        ("call (555) 123-4567", "call [phone]"),
        ("ring 07911123456", "ring [phone]"),
        ("intl +49 151 12345678", "intl [phone]"),
    ],
)
def test_redaction_catches_pii(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@given(st.lists(st.integers(0, 9), min_size=12, max_size=18))
def test_any_luhn_valid_card_is_redacted(digits: list[int]) -> None:
    # complete the number with its Luhn check digit
    body = "".join(map(str, digits))
    check = next(d for d in range(10) if luhn_valid(body + str(d)))
    card = body + str(check)
    assert "[card]" in redact_text(f"pay with {card} today")
    assert card not in redact_text(f"pay with {card} today")


def test_filter_does_not_mutate_input_and_walks_nesting() -> None:
    f = PrivacyFilter({"secret": "drop"}, FieldCipher([Fernet.generate_key()]))
    payload: dict[str, Any] = {"a": {"SECRET": 1, "b": ["x@y.example"]}}
    assert f.clean(payload) == {"a": {"b": ["[email]"]}}
    assert payload == {"a": {"SECRET": 1, "b": ["x@y.example"]}}


_JSON_KEYS = st.sampled_from(
    [
        "query",
        "note",
        "email",
        "user_email",
        "phone",
        "ip",
        "client_ip",
        "password",
        "ssn",
        "item_id",
        "item_ids",
        "user_agent",
        "element_id",
        "url",
        "creditCardNumber",
        "zip",
        "tip",
    ]
)
_JSON_TEXT = st.sampled_from(
    [
        "plain words",
        "ann@example.com",
        "call +1 (555) 123-4567",
        "4111 1111 1111 1111",
        "203.0.113.77",
        "2001:db8::1",
        "order 12345 shipped 2024-01-15",
        "[redacted]",
        "",
    ]
)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _JSON_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_JSON_KEYS, inner, max_size=4),
    max_leaves=12,
)


def _filter(policy: dict[str, Any] | None = None) -> PrivacyFilter:
    from tastebud.config import Settings

    return PrivacyFilter(
        policy or Settings().sensitive_fields, FieldCipher([Fernet.generate_key()])
    )


_DEFAULT_FILTER = _filter()
_TRUNCATING_FILTER = _filter({"ip": "truncate", "email": "redact", "secret": "drop"})


@given(st.dictionaries(_JSON_KEYS, _JSON, max_size=6))
def test_scrub_is_clean_without_copies(payload: dict[str, Any]) -> None:
    # The ingest path's scrub must store exactly what clean stores (the plan cache is keyed by
    # field name: the same name gets the same treatment at any depth, as clean gives it).
    import copy

    import orjson

    for f in (_DEFAULT_FILTER, _TRUNCATING_FILTER):
        before = copy.deepcopy(payload)
        scrubbed, cleaned = f.scrub(payload), f.clean(payload)
        assert payload == before  # never modified
        assert f.decrypt(scrubbed) == f.decrypt(cleaned)
        if cleaned == payload and not any(f.action_for(k) for k in _keys(payload)):
            assert scrubbed is payload  # nothing changed: no copy
        for _ in range(2):  # the second time, possibly from the memo of verbatim payloads
            text = f.scrub_json(payload)
            stored = None if text is None else f.decrypt(orjson.loads(text))
            assert stored == (f.decrypt(cleaned) if cleaned else None)


def _keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [k for key, v in value.items() for k in (key, *_keys(v))]
    if isinstance(value, list):
        return [k for v in value for k in _keys(v)]
    return []


def test_scrub_redacts_and_encrypts_like_clean() -> None:
    f = _filter()
    payload: dict[str, Any] = {
        "query": "mail ann@example.com",
        "item_id": "ann@example.com",  # identifiers are not scanned
        "user_email": "ann@example.com",
        "password": "hunter2",
        "nested": {"client_ip": "203.0.113.77", "items": ["4111 1111 1111 1111", 3]},
        "title": "nothing here",
    }
    out = f.scrub(payload)
    assert out["query"] == "mail [email]" and out["item_id"] == "ann@example.com"
    assert set(out["user_email"]) == {"$enc"} and "ann@example.com" not in repr(out["user_email"])
    assert f.decrypt(out["user_email"]) == "ann@example.com"
    assert "password" not in out and out["nested"] == {"items": ["[card]", 3]}
    assert payload["password"] == "hunter2" and payload["nested"]["client_ip"] == "203.0.113.77"
    same: dict[str, Any] = {"title": "plain", "n": 3, "more": {"x": [1, "y"]}}
    assert f.scrub(same) is same


def test_scrub_plan_cache_is_per_field_name() -> None:
    # The cached decision for a name must not leak to other names, whatever came first.
    f = _filter({"ip": "truncate"})
    assert f.scrub({"tip": "call 07911123456"}) == {"tip": "call [phone]"}
    assert f.scrub({"ip": "203.0.113.77"}) == {"ip": "203.0.113.0"}
    assert f.scrub({"client_ip": "198.51.100.9", "zip": "07911123456"}) == {
        "client_ip": "198.51.100.0",
        "zip": "[phone]",
    }
    assert f.scrub({"item_id": "07911123456"}) == {"item_id": "07911123456"}
    assert f.scrub({"item_ids": ["07911123456"], "ids": ["07911123456"]}) == {
        "item_ids": ["07911123456"],
        "ids": ["[phone]"],
    }


def test_scrub_json_remembers_only_payloads_left_verbatim() -> None:
    import orjson

    f = _filter()
    plain = {"device_type": "mobile", "network": {"effective_type": "4g"}}
    for _ in range(2):  # the second time from the memo
        assert f.scrub_json(dict(plain)) == orjson.dumps(plain).decode()
    with_pii = {"url": "https://x.example/?e=ann@example.com", "email": "ann@example.com"}
    first, second = f.scrub_json(with_pii), f.scrub_json(with_pii)
    assert first is not None and second is not None
    assert "ann@example.com" not in first and "[email]" in first
    assert first != second  # encrypted afresh each time, never served from the memo
    assert f.decrypt(orjson.loads(first)) == f.decrypt(orjson.loads(second))
    assert f.scrub_json({"password": "x"}) is None  # emptied by the policy: not stored
    assert f.scrub_json({}) is None
    assert all("ann@example.com" not in t and "password" not in t for t in f._verbatim)


def test_secrets_are_generated_privately_in_development(tmp_path: Path) -> None:
    from tastebud.config import Settings
    from tastebud.privacy import load_secrets

    s = Settings(data_dir=tmp_path)
    first = load_secrets(s)
    assert load_secrets(s) == first  # reused, not regenerated
    for name in ("pseudonym.key", "fernet.keys"):
        mode = (tmp_path / "secrets" / name).stat().st_mode & 0o777
        assert mode == 0o600
    assert "pseudonym_key" in repr(first) or "Secrets(" in repr(first)
    assert first.pseudonym_key.decode() not in repr(first)
