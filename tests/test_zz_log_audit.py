"""The log audit over the whole suite (issue 9, item 7): no API key, secret, raw user id or PII
value appears in any line the session logged, nor in the log of any real server process it
started. Named to run last (pytest runs test files in alphabetical order); ``conftest.py`` starts
the capture (``log_audit.py``) before the first test.
"""

from __future__ import annotations

import pytest

from log_audit import LogAudit
from tastebud.monitoring import get_logger
from tastebud.privacy import Pseudonymizer


def test_the_audit_catches_what_it_looks_for(log_audit: LogAudit) -> None:
    """The capture works, and a leak of each kind would be reported (run alone too)."""
    fake_key = "tb_serve_0123456789ab_" + "Q" * 43
    get_logger("tastebud.audit").error("audit probe", authorization=f"Bearer {fake_key}")
    probe = [line for line in log_audit.lines if "audit probe" in line]
    assert probe and fake_key not in probe[0]  # captured, and as written (scrubbed)
    Pseudonymizer(b"k" * 32).user("probe-user-31337")
    assert "probe-user-31337" in log_audit.raw_ids
    audit = LogAudit()
    audit.secrets = {"s3cr3t-value-abcdefghij"}
    audit.raw_ids = {"probe-user-31337", "ann lee"}
    leaked = audit.findings(
        [
            f"x key={fake_key}",
            "s3cr3t-value-abcdefghij",
            "route=/v1/users/probe-user-31337/profile",
            "user is ann lee",
            "nb-user-0000042 logged in",
            "mail carol@example.net now",
            "call +44 20 7946 0958",
        ]
    )
    assert len(leaked) == 7, leaked
    assert not audit.findings(["request method=GET route=/v1/users/{user_id} status=200 ms=3.1"])


RICH_LOCALS = "─ locals ─"
"""The panel title of a rich traceback that prints each frame's local variables."""


def test_no_key_secret_raw_id_or_pii_in_any_log(
    log_audit: LogAudit, tmp_path_factory: pytest.TempPathFactory
) -> None:
    lines = list(log_audit.lines)
    server_lines = LogAudit.server_logs(tmp_path_factory.getbasetemp())
    if log_audit.tests_started > 2:  # other tests ran before this file
        assert len(lines) > log_audit.tests_started // 10, "the capture saw almost nothing"
    with_locals = [line for line in lines if RICH_LOCALS in line]
    leaked = log_audit.findings([line for line in lines if RICH_LOCALS not in line] + server_lines)
    assert not leaked, f"{len(leaked)} leaks, e.g.:\n" + "\n".join(sorted(set(leaked))[:40])
    in_locals = log_audit.findings(with_locals)
    # Tracebacks are printed plain (monitoring/logging.py): no frame locals in any log.
    assert not with_locals and not in_locals, "\n".join(sorted(set(in_locals))[:10])
