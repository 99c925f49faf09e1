"""API keys without a server: parsing, roles, the Bearer header and the settings rule."""

from __future__ import annotations

import pydantic
import pytest

from kilowatch.auth import ApiKeys, parse_keys
from kilowatch.settings import Settings

KEYS = ApiKeys(device=(b"dev-1", b"dev-2"), operator=(b"op-1",))


def test_keys_are_comma_separated_and_blanks_dropped() -> None:
    assert parse_keys(" a , b,,c ,") == (b"a", b"b", b"c")
    assert parse_keys("") == () and parse_keys(" , ") == ()


def test_no_keys_means_an_open_api() -> None:
    assert not ApiKeys.from_settings(Settings()).enabled
    assert ApiKeys.from_settings(Settings(operator_api_keys="op")).enabled


@pytest.mark.parametrize(
    ("header", "role"),
    [
        (b"Bearer dev-2", "device"),
        (b"Bearer op-1", "operator"),
        (b"bearer  op-1 ", "operator"),  # the scheme is case-insensitive (RFC 7235)
        (b"Bearer op-", None),  # a prefix of a key is not the key
        (b"Bearer op-1x", None),
        (b"Bearer ", None),
        (b"Basic op-1", None),
        (b"op-1", None),
        (None, None),
    ],
)
def test_role_of_an_authorization_header(header: bytes | None, role: str | None) -> None:
    assert KEYS.role(header) == role


def test_a_key_in_both_lists_is_an_operator_key() -> None:
    assert ApiKeys(device=(b"k",), operator=(b"k",)).role(b"Bearer k") == "operator"


def test_non_ascii_keys_match_their_utf8_bytes() -> None:
    keys = ApiKeys.from_settings(Settings(operator_api_keys="clé"))
    assert keys.role(b"Bearer " + "clé".encode()) == "operator"


def test_device_keys_without_operator_keys_are_refused() -> None:
    # Reads would refuse every key: a configuration mistake, reported at start-up.
    with pytest.raises(pydantic.ValidationError, match="operator_api_keys"):
        Settings(device_api_keys="dev")
    Settings(operator_api_keys="op")  # operators only: devices ingest with an operator key
