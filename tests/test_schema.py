"""Event schema: every type, the envelope rules, and the examples in docs/events.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tastebud.events import DATA_MODELS, EVENT_CATEGORIES
from tastebud.events.compat import from_camel_payload
from tastebud.events.ingest import describe_validation_error
from tastebud.events.schema import validate_event

DOC = Path(__file__).resolve().parents[1] / "docs" / "events.md"
SEED_TYPES = {
    "page_view",
    "click",
    "form_submit",
    "search",
    "content_engagement",
    "rating",
    "page_load",
    "error",
    "resource_usage",
    "network_quality",
    "conversion",
    "feature_usage",
    "settings_change",
    "account",
    "impression",
    "feedback",
    "interaction",
}


def doc_examples() -> list[dict[str, Any]]:
    """The events of docs/events.md (not the examples of bad requests, shown with an answer)."""
    from test_docs import event_examples

    return [request for _, request, answer in event_examples() if answer is None]


def errors_of(raw: Any) -> list[dict[str, str]]:
    with pytest.raises(ValidationError) as info:
        validate_event(raw)
    return describe_validation_error(info.value)


def base(**kw: Any) -> dict[str, Any]:
    return {"event_type": "page_view", "timestamp": "2026-01-01T00:00:00Z", "user_id": "u", **kw}


def test_every_seed_type_is_defined_and_categorised() -> None:
    assert set(DATA_MODELS) == SEED_TYPES
    categorised = {t for types in EVENT_CATEGORIES.values() for t in types}
    assert categorised == SEED_TYPES


def test_every_doc_example_validates_and_covers_every_type() -> None:
    examples = doc_examples()
    types = set()
    for ex in examples:
        if "eventType" in ex:
            ex = from_camel_payload(ex)
        types.add(validate_event(ex).event_type)  # type: ignore[attr-defined]
    assert SEED_TYPES <= types
    assert any(t.startswith("custom.") for t in types)


def test_item_id_is_lifted_from_data_and_must_agree() -> None:
    ev = validate_event(base(event_type="rating", data={"item_id": "m1", "value": 3}))
    assert ev.item_id == "m1"
    errs = errors_of(base(event_type="rating", item_id="m2", data={"item_id": "m1", "value": 3}))
    assert errs == [{"field": "event", "message": "item_id and data.item_id differ"}]


BAD_EVENTS: list[tuple[dict[str, Any], str, str]] = [
    (base(event_type="nope"), "event_type", "must be one of"),
    (base(timestamp="2026-01-01T00:00:00"), "timestamp", "timezone"),
    (base(timestamp="yesterday"), "timestamp", "datetime"),
    (
        {"event_type": "page_view", "timestamp": "2026-01-01T00:00:00Z"},
        "event",
        "one of user_id or anonymous_id is required",
    ),
    (base(user_id="a\nb"), "user_id", "printable"),
    (base(user_id="x" * 129), "user_id", "at most 128"),
    (base(user_id=""), "user_id", "at least 1"),
    (base(session_id="s\x00"), "session_id", "printable"),
    (base(user_id=17), "user_id", "valid string"),
    (base(event_type="search", data={}), "data.query", "Field required"),
    (base(event_type="search", data={"query": 5}), "data.query", "valid string"),
    (base(event_type="rating", data={"value": 2}), "event", "needs item_id"),
    (base(event_type="click", data={}), "event", "element_id or item_id"),
    (
        base(event_type="content_engagement", item_id="i", data={"scroll_depth": 1.5}),
        "data.scroll_depth",
        "less than or equal to 1",
    ),
    (base(event_type="feedback", item_id="i", data={"kind": "meh"}), "data.kind", "like"),
    (
        base(event_type="conversion", data={"goal": "g", "currency": "euro"}),
        "data.currency",
        "pattern",
    ),
    (base(event_type="custom.Bad Name"), "event_type", "custom.<name>"),
    (base(userid="typo"), "userid", "Extra inputs"),
    (base(data={"duration_ms": float("nan")}), "data.duration_ms", "finite"),
]


@pytest.mark.parametrize(("raw", "field", "fragment"), BAD_EVENTS)
def test_bad_events_get_precise_messages(raw: dict[str, Any], field: str, fragment: str) -> None:
    errs = errors_of(raw)
    assert any(e["field"] == field and fragment in e["message"] for e in errs), errs


def test_context_keeps_only_the_allow_list() -> None:
    ev = validate_event(
        base(
            context={
                "user_agent": "UA",
                "cookie": "secret=1",
                "device_type": "Mobile",
                "network": {"effective_type": "4g", "carrier": "x"},
            }
        )
    )
    assert ev.context is not None
    dumped = ev.context.model_dump(exclude_none=True)
    assert dumped == {
        "user_agent": "UA",
        "device_type": "mobile",
        "network": {"effective_type": "4g"},
    }


def test_custom_events_take_any_data() -> None:
    ev = validate_event(base(event_type="custom.video_play", data={"nested": {"a": [1, 2]}}))
    assert ev.data.model_dump() == {"nested": {"a": [1, 2]}}  # type: ignore[attr-defined]


def test_unix_seconds_are_accepted_as_utc() -> None:
    ev = validate_event(base(timestamp=1_700_000_000))
    assert ev.timestamp.utcoffset() is not None
    assert ev.timestamp.timestamp() == 1_700_000_000


@given(
    st.text(min_size=1, max_size=128).filter(
        lambda s: all(
            not (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029") for c in s
        )
    )
)
def test_printable_ids_are_accepted(value: str) -> None:
    assert validate_event(base(user_id=value)).user_id == value


@given(
    st.text(max_size=20),
    st.sampled_from(["\x00", "\n", "\t", "\x1b", "\x7f", "\x85", "\u2028"]),
    st.text(max_size=20),
)
def test_ids_with_control_characters_are_rejected(prefix: str, bad: str, suffix: str) -> None:
    errs = errors_of(base(user_id=prefix + bad + suffix))
    assert any(e["field"] == "user_id" for e in errs)


def test_camel_payload_mapping() -> None:
    raw = {
        "timestamp": "2026-01-01T00:00:00Z",
        "userId": None,
        "anonymousId": "d1",
        "eventType": "contentEngagement",
        "itemId": "i",
        "data": {"timeSpentMs": 10},
        "context": {"userAgent": "UA"},
    }
    ev = validate_event(from_camel_payload(raw))
    assert ev.event_type == "content_engagement"  # type: ignore[attr-defined]
    assert ev.anonymous_id == "d1" and ev.user_id is None
    assert ev.data.time_spent_ms == 10  # type: ignore[attr-defined]
    assert ev.context is not None and ev.context.user_agent == "UA"


def test_plain_fields_matches_model_dump() -> None:
    from tastebud.events.schema import plain_fields
    from tastebud.simulator import SimConfig, Simulator

    samples = [e if "eventType" not in e else from_camel_payload(e) for e in doc_examples()]
    samples += list(Simulator(SimConfig(users=30, items=40, days=2, seed=5)).events())[:300]
    for raw in samples:
        ev = validate_event(raw)
        for part in (ev.data, ev.context):  # type: ignore[attr-defined]
            if part is not None:
                assert plain_fields(part) == part.model_dump(exclude_none=True)


@pytest.mark.parametrize(
    "ts",
    [
        "2026-01-01T00:00:00Z",
        "2026-01-01T01:00:00+01:00",
        "2026-01-01T00:00:00.000+00:00",
        1767225600,
        1767225600.0,
    ],
)
def test_timestamp_forms_agree(ts: Any) -> None:
    from tastebud.events.schema import event_timestamp_ms

    assert event_timestamp_ms(validate_event(base(timestamp=ts)).timestamp) == 1767225600000


def _model_dict(raw: dict[str, Any]) -> dict[str, Any]:
    """What the models make of an event, in the stored form."""
    from tastebud.events.schema import plain_fields

    ev = validate_event(raw)
    out = plain_fields(ev)
    data = out.setdefault("data", {})
    if "item_id" in type(ev.data).model_fields:  # type: ignore[attr-defined]
        data.pop("item_id", None)
    return out


def _equivalence_samples() -> list[dict[str, Any]]:
    from tastebud.simulator import SimConfig, Simulator

    samples = [e if "eventType" not in e else from_camel_payload(e) for e in doc_examples()]
    samples += list(Simulator(SimConfig(users=40, items=40, days=3, seed=8)).events())[:400]
    samples += [
        base(data={"title": None, "extra": {"nested": [1, None]}}, context={"network": {}}),
        base(event_type="page_view", data={"item_id": "kept-as-extra"}),
        base(event_type="interaction", item_id="i"),  # weight default
        base(event_type="content_engagement", data={"item_id": "i"}),  # shared default
        base(event_type="custom.thing", data={"k": "v"}, context={"device_type": "TV"}),
        base(user_id=None, anonymous_id="a"),
    ]
    return samples


def test_fast_path_produces_what_the_models_produce() -> None:
    from tastebud.events._fast import parse_event

    for raw in _equivalence_samples():
        assert parse_event(raw) == _model_dict(raw), raw


def test_fast_path_rejects_what_the_models_reject() -> None:
    from tastebud.events._fast import parse_event

    bad_cases = [case[0] for case in BAD_EVENTS]
    for raw in bad_cases:
        with pytest.raises(ValidationError) as fast:
            parse_event(raw)
        with pytest.raises(ValidationError) as model:
            validate_event(raw)
        assert describe_validation_error(fast.value) == describe_validation_error(model.value)


@given(
    st.dictionaries(
        st.sampled_from(["query", "results_count", "extra", "item_id"]),
        st.one_of(
            st.none(),
            st.integers(-3, 3),
            st.text(max_size=5),
            st.floats(allow_nan=True),
            st.booleans(),
        ),
        max_size=4,
    ),
    st.sampled_from(["search", "rating", "click", "interaction", "page_view", "custom.x"]),
)
def test_fast_path_agrees_on_arbitrary_data(data: dict[str, Any], event_type: str) -> None:
    from tastebud.events._fast import parse_event

    raw = base(event_type=event_type, data=data)
    try:
        expected = _model_dict(raw)
    except ValidationError:
        with pytest.raises(ValidationError):
            parse_event(raw)
        return
    assert parse_event(raw) == expected
