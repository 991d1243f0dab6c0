"""The conformance kit (`identity simulate conformance`), run as an ISV runs it: the real CLI in
a process of its own, against identity in another, over real HTTP.

identity passes every case, V1 and the order-details path included; a broken stand-in ISV
(tests/helpers/broken_isv.py: identity behind a proxy that injects one flaw) fails exactly the
cases about its flaw. Bad options are refused before anything is sent."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from defusedxml import ElementTree
from typer.testing import CliRunner

from identity.simulator.cli import app
from identity.simulator.conformance.catalogue import Need
from identity.simulator.conformance.checks import refused_or_http
from identity.simulator.conformance.exchange import Reply
from identity.simulator.conformance.probe import ADMITTED, REFUSED, SignIn, live_cookie
from identity.simulator.conformance.report import as_json, table, verdict, write_junit
from identity.simulator.conformance.runner import catalogue
from identity.simulator.conformance.session import Result, Status
from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY, SECRET_KEY
from tests.helpers.servers import ROOT, ServiceProcesses, free_port, service_env

APP_ID = "conformance-app"
V1_KEY = "v1-key-for-conformance-0123456789"
ORDER_AK, ORDER_SK = "CONFORMANCEAK0001", "conformance-secret-access-key-0001"
SLOW_LIMIT, SLOW_DELAY = 5.0, 8.0
"""The slow flaw's run: every other answer (milliseconds) has 5 s even on a loaded machine; the
two held renewals cost the limit each, not the delay (the kit stops waiting)."""
CASES = catalogue()
NOT_RUN_WITHOUT_V1_AND_ORDERS = {
    name for name, spec in CASES.items() if {Need.V1, Need.ORDERS} & set(spec.needs)
}
FLAWS = {
    "wrong-signature": {
        f"signing.{variant}.{kind}"
        for variant in ("wrong-key", "swapped-keys", "wrong-formula", "missing-signature")
        for kind in ("basic", "kit")
    },
    "new-instance-per-retry": {"newInstance.retry", "newInstance.concurrent"},
    "older-sync-wins": {"state.older-sync-ignored"},
    # every case that sends a refreshInstance of scene RENEWAL with a 17-digit expireTime
    "slow": {"refreshInstance.renewal", "debug.refreshInstance"},
    # no flaw: a cookie on every answer, refusals too, must not count as a sign-in
    "flash-cookie": set(),
}
PROBED = {"older-sync-wins"}
"""The flaws whose run asks identity's /sso/session whether a probe signed in (--probe-url);
the others judge by the callback's cookies alone."""


@pytest.fixture(scope="module")
def public_key_file(
    tmp_path_factory: pytest.TempPathFactory, private_key: rsa.RSAPrivateKey
) -> Path:
    """The seller's public key, as the seller uploads it to KooGallery (§2.7)."""
    path = tmp_path_factory.mktemp("conformance") / "seller.pub.pem"
    path.write_bytes(
        private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@contextmanager
def reserved_port() -> Iterator[int]:
    """A port kept bound (not listening) while in use, so that no other process is given it;
    the server meant for it binds it too (SO_REUSEADDR, allowed beside a socket that does not
    listen), as often as it is started again."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


@pytest.fixture(scope="module")
def kit_port() -> Iterator[int]:
    """Where the kit's auth centre and order API listen: identity is told before it starts."""
    with reserved_port() as port:
        yield port


@pytest.fixture(scope="module")
def proxy_port() -> Iterator[int]:
    """Where each broken ISV listens in turn: the identity behind it takes it for its address,
    as an ISV behind a proxy does, so its registered callback is the proxy's."""
    with reserved_port() as port:
        yield port


def _identity(
    database_url: str, private_key_file: Path, public_port: int | None = None, **more: str
) -> ServiceProcesses:
    port = free_port()
    env = service_env(
        database_url,
        secret_key=SECRET_KEY,
        basic_key=BASIC_KEY,
        kit_key=KIT_KEY,
        base_url=f"http://127.0.0.1:{public_port or port}",
    )
    env |= {
        "IDENTITY_MARKETPLACE_PRIVATE_KEY_FILE": str(private_key_file),
        "IDENTITY_SESSION_COOKIE_SECURE": "false",
        **more,
    }
    return ServiceProcesses(1, env, ports=[port])


@pytest.fixture(scope="module")
def identity(database_url: str, private_key_file: Path, kit_port: int) -> Iterator[str]:
    """identity with V1 on and the query-order API configured (the kit's address)."""
    with _identity(
        database_url,
        private_key_file,
        IDENTITY_MARKETPLACE_V1_KEY=V1_KEY,
        IDENTITY_MARKETPLACE_AK=ORDER_AK,
        IDENTITY_MARKETPLACE_SK=ORDER_SK,
        IDENTITY_MARKETPLACE_API_URL=f"http://127.0.0.1:{kit_port}",
    ) as service:
        yield service.urls[0]


@pytest.fixture(scope="module")
def plain_identity(database_url: str, private_key_file: Path, proxy_port: int) -> Iterator[str]:
    """identity with V2 only and no order API: what the broken ISVs stand in front of."""
    with _identity(database_url, private_key_file, proxy_port) as service:
        yield service.urls[0]


def conformance(*args: str) -> subprocess.CompletedProcess[str]:
    """`identity simulate conformance ARGS` as an ISV runs it, without identity's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(  # noqa: S603 - our own entry point
        [sys.executable, "-m", "identity.cli", "simulate", "conformance", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def keys(public_key_file: Path, identity: str) -> list[str]:
    return [
        *("--basic-key", BASIC_KEY, "--kit-key", KIT_KEY, "--public-key", str(public_key_file)),
        *("--app-id", APP_ID, "--sso-callback", f"{identity}/sso/callback/{APP_ID}"),
    ]


def junit_cases(path: Path) -> dict[str, str]:
    """Each <testcase>'s name and result, after checking the file's structure and counts."""
    root = ElementTree.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    cases = suite.findall("testcase")
    results: dict[str, str] = {}
    for case in cases:
        assert case.get("classname", "").startswith("koogallery.")
        float(case.get("time", ""))
        outcome = [child.tag for child in case if child.tag in ("failure", "skipped")]
        results[case.get("name", "")] = outcome[0] if outcome else "passed"
    assert len(results) == len(cases)
    for element in (root, suite):
        assert element.get("tests") == str(len(cases))
        assert element.get("failures") == str(sum(r == "failure" for r in results.values()))
        assert element.get("skipped") == str(sum(r == "skipped" for r in results.values()))
        assert element.get("errors") == "0"
    return results


def test_identity_passes_every_case(
    identity: str, public_key_file: Path, kit_port: int, tmp_path: Path
) -> None:
    junit = tmp_path / "conformance.xml"
    done = conformance(
        "--target", f"{identity}/koogallery", *keys(public_key_file, identity),
        "--v1-key", V1_KEY, "--order-ak", ORDER_AK, "--order-sk", ORDER_SK,
        "--auth-centre-port", str(kit_port), "--probe-url", f"{identity}/sso/session",
        "--json", "--junit", str(junit),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr
    report = json.loads(done.stdout)
    failed = [c for c in report["cases"] if c["result"] != "passed"]
    assert failed == []
    assert sorted(c["name"] for c in report["cases"]) == sorted(CASES)
    assert report["passed"] is True and report["verdict"].startswith("PASS: would pass")
    total = len(CASES)
    assert report["counts"] == {"passed": total, "failed": 0, "skipped": 0, "total": total}
    assert junit_cases(junit) == dict.fromkeys(CASES, "passed")


@pytest.mark.parametrize("flaw", list(FLAWS))
def test_a_broken_isv_fails_exactly_the_cases_about_its_flaw(
    flaw: str, plain_identity: str, proxy_port: int, public_key_file: Path, tmp_path: Path
) -> None:
    port = proxy_port

    def argv(p: int) -> list[str]:
        return [sys.executable, "-m", "tests.helpers.broken_isv", flaw, plain_identity, str(p),
                str(SLOW_DELAY)]  # fmt: skip

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    slow = ["--time-limit", str(SLOW_LIMIT)] if flaw == "slow" else []
    junit = tmp_path / "conformance.xml"
    with ServiceProcesses(1, env, ports=[port], argv=argv) as proxy:
        probe = ["--probe-url", f"{proxy.urls[0]}/sso/session"] if flaw in PROBED else []
        done = conformance(
            "--target", f"{proxy.urls[0]}/koogallery", *keys(public_key_file, proxy.urls[0]),
            *slow, *probe, "--junit", str(junit),
        )  # fmt: skip
    assert done.returncode == (1 if FLAWS[flaw] else 0), done.stdout[-4000:] + done.stderr
    results = junit_cases(junit)
    assert {name for name, r in results.items() if r == "failure"} == FLAWS[flaw], done.stdout
    assert {name for name, r in results.items() if r == "skipped"} == NOT_RUN_WITHOUT_V1_AND_ORDERS
    lines = done.stdout.splitlines()
    for name in FLAWS[flaw]:
        assert any(line.startswith("FAIL") and f" {name} " in line for line in lines), name
    verdict_line = next(line for line in lines if line.startswith("Verdict: "))
    assert verdict_line.startswith("Verdict: FAIL" if FLAWS[flaw] else "Verdict: PASS on what")
    assert ("would not pass the dial test" in verdict_line) == (flaw == "slow")
    assert "no --v1-key" in done.stdout and "no --order-ak/--order-sk" in done.stdout


# --- without processes ------------------------------------------------------------------------


def test_the_verdict_names_what_was_not_run_and_why() -> None:
    skipped = Result(CASES["state.disabled-refused"], Status.SKIPPED, "no --sso-callback (…)")
    passed = Result(CASES["newInstance"], Status.PASSED, "000000")
    found = verdict([passed, skipped])
    assert found.passed and found.headline.startswith("PASS on what was checked")
    assert found.skipped == [("no --sso-callback (…)", ["state.disabled-refused"])]
    report = as_json([passed, skipped], "https://isv.example.com/produce")
    assert report["counts"] == {"passed": 1, "failed": 0, "skipped": 1, "total": 2}


def test_a_debug_call_not_run_leaves_the_dial_test_unchecked() -> None:
    skipped = Result(CASES["debug.applicationSync"], Status.SKIPPED, "no --public-key (…)")
    passed = Result(CASES["newInstance"], Status.PASSED, "000000")
    found = verdict([passed, skipped])
    assert found.passed
    assert "would pass the dial test" not in found.headline
    assert "the dial test (拨测) is unchecked" in found.headline
    assert "debug.applicationSync" in found.headline
    failed = Result(CASES["newInstance.retry"], Status.FAILED, "000000, another instanceId")
    found = verdict([passed, skipped, failed])
    assert not found.passed and "replays that ran passed" in found.headline


def test_a_failed_debug_case_means_the_dial_test_would_fail() -> None:
    failed = Result(CASES["debug.queryInstance"], Status.FAILED, "HTTP 500")
    found = verdict([failed, Result(CASES["newInstance"], Status.PASSED, "000000")])
    assert not found.passed
    assert found.headline.startswith("FAIL: would not pass the dial test")
    ((consequence, names),) = found.failures
    assert names == ["debug.queryInstance"] and "five failing days" in consequence


@pytest.mark.parametrize(
    ("header", "live"),
    [
        ("sid=abc; Path=/; HttpOnly", True),
        ("sid=; Path=/", False),
        ("sid=abc; Max-Age=0", False),
        ("sid=abc; expires=Thu, 01 Jan 1970 00:00:00 GMT", False),
        ("sid=abc; Max-Age=3600; expires=Thu, 01 Jan 2099 00:00:00 GMT", True),
    ],
)
def test_a_sign_in_counts_only_a_cookie_that_is_set_not_deleted(header: str, live: bool) -> None:
    from datetime import UTC, datetime

    assert live_cookie(header, datetime.now(UTC)) is live


@pytest.mark.parametrize(
    ("sign_in", "verdict"),
    [
        # from the callback's cookies, those a refusal also sets left out
        (SignIn(303, cookies=("sid",), redeemed=True, ignored=("flash",)), ADMITTED),
        (SignIn(303, cookies=(), redeemed=True, ignored=("flash",)), REFUSED),
        (SignIn(200, cookies=("sid",), redeemed=False), None),
        (SignIn(403, cookies=("sid",), redeemed=True), REFUSED),
        # from the probe URL, asked with those cookies: its status decides, not the cookies
        (SignIn(303, cookies=("flash",), redeemed=True, probe_status=200), ADMITTED),
        (SignIn(303, cookies=("sid",), redeemed=True, probe_status=401), REFUSED),
        (SignIn(303, cookies=("sid",), redeemed=True, probe_status=302), REFUSED),
        (SignIn(303, cookies=("sid",), redeemed=False, probe_status=200), None),
        (SignIn(303, cookies=("sid",), redeemed=True, probe_status=500), None),
    ],
)
def test_a_sign_in_is_judged_by_the_probe_url_or_else_the_cookies_a_refusal_does_not_set(
    sign_in: SignIn, verdict: str | None
) -> None:
    assert sign_in.verdict == verdict


@pytest.mark.parametrize(
    ("status", "body", "passes"),
    [
        (404, b"Not Found", True),
        (405, b"", True),
        (200, b'{"resultCode":"000002","resultMsg":"unknown interface"}', True),
        (200, b'{"resultCode":"000000","resultMsg":"success"}', False),
        (500, b"Internal Server Error", False),
    ],
)
def test_an_unknown_kit_interface_may_be_refused_by_http_status_or_by_code(
    status: int, body: bytes, passes: bool
) -> None:
    kind = "application/json" if body.startswith(b"{") else "text/plain"
    reply = Reply(status, httpx.Headers({"content-type": kind}), body, seconds=0.01)
    assert (refused_or_http(20.0, 404, 405)(reply) is None) is passes


def test_what_the_endpoint_answered_cannot_break_the_junit_file_or_the_terminal(
    tmp_path: Path,
) -> None:
    got = "000005 \x01bad\x1b[31m red\x1b[0m\x0b message, 中文 kept"
    results = [Result(CASES["tenantSync.add"], Status.FAILED, got),
               Result(CASES["newInstance"], Status.PASSED, got)]  # fmt: skip
    junit = tmp_path / "conformance.xml"
    write_junit(results, "https://isv.example.com/\x1b[2Jproduce", junit)
    assert junit_cases(junit) == {"tenantSync.add": "failure", "newInstance": "passed"}
    root = ElementTree.parse(junit).getroot()
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None
    assert failure.get("message") == "000005 bad red message, 中文 kept"
    printed = table(results, "https://isv.example.com/produce")
    assert "\x1b" not in printed and "\x01" not in printed and "\x0b" not in printed
    assert "000005 bad red message, 中文 kept" in printed


def test_every_case_is_documented() -> None:
    text = (ROOT / "docs" / "conformance.md").read_text("utf-8")
    missing = [name for name in CASES if f"`{name}`" not in text]
    assert missing == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "isv.example.com/produce"], "is not an http(s) URL"),
        (["--kit-key", BASIC_KEY], "must differ"),
        (["--order-ak", ORDER_AK], "give both or neither"),
        (["--probe-url", "https://isv.example.com/me"], "needs --sso-callback"),
        (["--public-key", "{private}"], "holds a private key"),
        (["--public-key", "{missing}"], "cannot read"),
    ],
)
def test_bad_options_are_refused_before_anything_is_sent(
    args: list[str], message: str, private_key_file: Path, tmp_path: Path
) -> None:
    chosen = {"--target": "https://isv.example.com/produce", "--basic-key": BASIC_KEY,
              "--kit-key": KIT_KEY}  # fmt: skip
    given: dict[str, Any] = {**chosen, **dict(zip(args[::2], args[1::2], strict=True))}
    paths = {"{private}": str(private_key_file), "{missing}": str(tmp_path / "none.pem")}
    argv = [part for k, v in given.items() for part in (k, paths.get(v, v))]
    # wide enough that the message, which names a long temporary path, is never wrapped
    result = CliRunner().invoke(app, ["conformance", *argv], env={"COLUMNS": "1000"})
    assert result.exit_code == 2, result.output
    assert message in result.output
