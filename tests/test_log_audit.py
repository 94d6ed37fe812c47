"""The log audit itself (``log_audit.py``, a plugin run over every session): it captures what
tests log, recognises each kind of leak, and a leak anywhere (a test, a doctest) fails the
session with a report that names where it came from and masks the value."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from log_audit import REPORT_ID, LogAudit
from tastebud.monitoring import get_logger
from tastebud.privacy import Pseudonymizer

TESTS = Path(__file__).resolve().parent
FAKE_KEY = "tb_serve_0123456789ab_" + "Q" * 43


def test_the_capture_sees_this_test_and_records_what_must_not_leak(log_audit: LogAudit) -> None:
    get_logger("tastebud.audit").error("audit probe", authorization=f"Bearer {FAKE_KEY}")
    probe = [
        (where, line)
        for where, line in zip(log_audit.where, log_audit.lines, strict=True)
        if "audit probe" in line
    ]
    assert probe, "the capture saw nothing"
    where, line = probe[-1]
    assert where.endswith("test_the_capture_sees_this_test_and_records_what_must_not_leak")
    assert FAKE_KEY not in line  # kept as written: scrubbed by the real handler
    Pseudonymizer(b"k" * 32).user("probe-user-31337")
    assert "probe-user-31337" in log_audit.raw_ids


def test_each_kind_of_leak_is_found() -> None:
    audit = LogAudit()
    audit.secrets = {"s3cr3t-value-abcdefghij"}
    audit.raw_ids = {"probe-user-31337", "ann lee"}
    leaked = audit.findings(
        [
            f"x key={FAKE_KEY}",
            "s3cr3t-value-abcdefghij",
            "route=/v1/users/probe-user-31337/profile",
            "user is ann lee",
            "nb-user-0000042 logged in",
            "mail carol@example.net now",
            "call +44 20 7946 0958",
        ]
    )
    assert len(leaked) == 7, leaked
    assert not any("s3cr3t-value" in f or "31337" in f or FAKE_KEY in f for f in leaked)
    assert not audit.findings(["request method=GET route=/v1/users/{user_id} status=200 ms=3.1"])
    # A recorded id inside a longer token is not that id (user-1 is not user-10).
    audit.raw_ids = {"user-1"}
    assert not audit.findings(["event user=user-10 accepted"])


def run_pytest(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in a subprocess on ``where`` with only the log audit plugin (no repo config)."""
    (where / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TASTEBUD_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "log_audit", "-p", "no:cacheprovider", *args],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


LEAKY_TESTS = f"""
import logging

from tastebud.monitoring import configure_logging, get_logger
from tastebud.privacy import Pseudonymizer


def test_clean():
    logging.getLogger("tastebud.x").warning("nothing to see")


def test_logs_a_key():
    logging.getLogger("tastebud.x").warning("using {FAKE_KEY}")


def test_logs_a_raw_user_id():
    configure_logging("INFO")
    Pseudonymizer(b"k" * 32).user("planted-user-4242")
    get_logger("tastebud.x").info("served", user="planted-user-4242")


def test_detaches_the_capture():
    logging.getLogger().handlers.clear()
"""

LEAKY_DOCTEST = '''
"""A module whose doctest logs an e-mail address."""

import logging


def shout():
    """
    >>> shout()
    """
    logging.getLogger("tastebud.doc").warning("mail ann.planted@example.com")
'''


def test_a_leak_fails_the_session_and_names_the_test_or_doctest(tmp_path: Path) -> None:
    (tmp_path / "test_leaky.py").write_text(LEAKY_TESTS)
    (tmp_path / "leaky_doc.py").write_text(textwrap.dedent(LEAKY_DOCTEST))
    r = run_pytest(tmp_path, "--doctest-modules", "-q")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out  # every test passed: only the audit failed the session
    assert "5 passed" in out and f"FAILED {REPORT_ID}" in out, out
    report = out[out.index("leaks in the") :]
    assert "test_leaky.py::test_logs_a_key:\n    an API key (tb_serve_...)" in report
    assert "test_leaky.py::test_logs_a_raw_user_id:\n    a raw user id (pla...)" in report
    doctest = "leaky_doc.py::leaky_doc.shout:\n    PII-shaped text: WARNING tastebud.doc mail"
    assert doctest in report
    assert "detached from the root logger during test_leaky.py::test_detaches_the_capture" in out
    assert "test_clean" not in report
    assert "lines logged by 5 tests, 0 server logs: 4 found" in out
    assert FAKE_KEY not in out and "planted-user-4242" not in out and "ann.planted" not in out


def test_a_clean_session_passes(tmp_path: Path) -> None:
    (tmp_path / "test_clean.py").write_text(
        "import logging\n\n\ndef test_logs():\n"
        "    logging.getLogger('tastebud.x').warning('event accepted status=202')\n"
    )
    r = run_pytest(tmp_path, "-q")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"FAILED {REPORT_ID}" not in r.stdout
    assert "log audit: 1 lines logged by 1 tests, 0 server logs: no leak" in r.stdout
