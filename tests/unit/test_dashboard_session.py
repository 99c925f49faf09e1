"""Dashboard sessions: a cookie that holds no key, checked by any worker with the keys alone."""

from __future__ import annotations

from kilowatch import auth
from kilowatch.dashboard import session

KEYS = auth.ApiKeys(device=(b"device-1",), operator=(b"op-1", b"op-2"))


def test_a_session_is_valid_for_its_lifetime_only() -> None:
    token = session.issue(b"op-2", now=1_000_000)
    assert b"op-2" not in token.encode()
    assert session.valid(KEYS, token, now=1_000_000 + session.LIFETIME_S - 1)
    assert not session.valid(KEYS, token, now=1_000_000 + session.LIFETIME_S)


def test_forged_tampered_or_foreign_sessions_are_refused() -> None:
    token = session.issue(b"op-1", now=1_000_000)
    expires, _, mac = token.partition(".")
    later = f"{int(expires) + 3600}.{mac}"  # a longer life without a new MAC
    for bad in (None, "", "garbage", later, token[:-1], f"{expires}.", "é.x"):
        assert not session.valid(KEYS, bad, now=1_000_000)
    device = session.issue(b"device-1", now=1_000_000)
    assert not session.valid(KEYS, device, now=1_000_000)
    # A key removed from OPERATOR_API_KEYS ends its sessions.
    fewer = auth.ApiKeys(device=(), operator=(b"op-2",))
    assert not session.valid(fewer, token, now=1_000_000)


def test_operator_key_matches_operator_keys_only() -> None:
    assert session.operator_key(KEYS, " op-2 ") == b"op-2"
    assert session.operator_key(KEYS, "device-1") is None
    assert session.operator_key(KEYS, "op-") is None


def test_after_sign_in_only_local_paths() -> None:
    assert session.local_path("/vehicles?sort=loss") == "/vehicles?sort=loss"
    for outside in (None, "", "https://evil.example/", "//evil.example/x", "/\\evil", "x"):
        assert session.local_path(outside) == "/"
