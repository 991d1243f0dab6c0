"""No open redirects, and a Flow B login state that cannot be forged or reused elsewhere."""

from __future__ import annotations

import time

import pytest

from identity.crypto import Mac
from identity.sessions.browser import allowed
from identity.sso.login_state import LoginState, seal, unseal

ORIGINS = {"https://identity.example.com", "https://app.example.com"}


@pytest.mark.parametrize(
    "target",
    ["/", "/sso/me", "/app/page?x=1#y", "https://app.example.com/home", "HTTPS://APP.example.com/"],
)
def test_allowed_targets(target: str) -> None:
    assert allowed(target, ORIGINS)


@pytest.mark.parametrize(
    "target",
    [
        "",
        "//evil.example.com/x",
        "/\\evil.example.com",
        "https://evil.example.com/",
        "https://app.example.com.evil.com/",
        "https://app.example.com@evil.com/",
        "http://app.example.com/",  # another scheme is another origin
        "javascript:alert(1)",
        "data:text/html,x",
        "/ok\r\nSet-Cookie: x=y",
        "evil.example.com",
    ],
)
def test_refused_targets(target: str) -> None:
    assert not allowed(target, ORIGINS)


def _state(expires: int | None = None) -> LoginState:
    return LoginState("abc123", "t1", "app1", "/next", expires or int(time.time()) + 60)


def test_sealed_state_round_trips() -> None:
    mac = Mac("a-master-key-of-enough-length", "sso-state")
    assert unseal(mac, seal(mac, _state())) == _state(_state().expires)


def test_tampered_foreign_or_expired_state_is_refused() -> None:
    mac = Mac("a-master-key-of-enough-length", "sso-state")
    sealed = seal(mac, _state())
    payload, tag = sealed.rsplit(".", 1)
    other = seal(mac, LoginState("zzz", "t2", "app1", "/", int(time.time()) + 60))
    assert unseal(mac, other.rsplit(".", 1)[0] + "." + tag) is None  # payload swapped
    assert unseal(mac, payload + "." + "0" * 64) is None
    assert unseal(Mac("another-master-key-0123456", "sso-state"), sealed) is None
    assert unseal(mac, seal(mac, _state(int(time.time()) - 1))) is None
    assert unseal(mac, None) is None
    assert unseal(mac, "garbage") is None
