"""Ingest bodies split into items before any is decoded: each item judged on its own, bounded."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from kilowatch.ingest import framing
from kilowatch.ingest.framing import NotJson

GOOD = b'{"meterId": "M-1", "voltage": 230}'
DEEP_2000 = b'{"junk": ' + b"[" * 2000 + b"]" * 2000 + b"}"
DEEP_40 = b'{"junk": ' + b"[" * 40 + b"]" * 40 + b"}"
SHALLOW_31 = b'{"ok": ' + b"[" * 31 + b"]" * 31 + b"}"


@pytest.fixture(params=["msgspec", "scanner"])
def splitter(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every array test runs through both splitters: they must agree."""
    if request.param == "scanner":
        monkeypatch.setattr(framing, "_RAW_COMMAS_PER_ITEM", 0)
    return str(request.param)


def outcomes(body: bytes, ndjson: bool = False, max_items: int = 10_000) -> list[Any]:
    """Each item decoded as the ingest route does: a value, or the NotJson message."""
    items, shallow = framing.split(body, ndjson=ndjson, max_items=max_items)
    result: list[Any] = []
    for item in items:
        try:
            result.append(
                str(item) if isinstance(item, NotJson) else framing.decode(item, shallow=shallow)
            )
        except NotJson as exc:
            result.append(str(exc))
    return result


@pytest.mark.usefixtures("splitter")
@pytest.mark.parametrize(
    "value",
    [
        [1, "two", None, True, {"a": [1, {"b": 2}]}, [], {}],
        [{"s": '],[{"}\\', "t": "\u00e9\u2603"}, {"s": '"'}],
        [{"x": 1.5e300}, -0.0, "", [[[["deep enough"]]]]],
    ],
)
def test_valid_arrays_split_into_their_elements(value: list[Any]) -> None:
    body = json.dumps(value, indent=1).encode()
    assert outcomes(body) == value


@pytest.mark.usefixtures("splitter")
def test_an_item_too_deep_is_rejected_alone_whatever_its_depth() -> None:
    body = b"[" + b", ".join([GOOD, DEEP_2000, GOOD, DEEP_40, SHALLOW_31]) + b"]"
    result = outcomes(body)
    assert result[0] == result[2] == json.loads(GOOD)
    assert result[1] == result[3] == framing.TOO_DEEP
    assert result[4] == json.loads(SHALLOW_31)


@pytest.mark.usefixtures("splitter")
def test_an_item_that_is_not_utf8_or_too_large_is_rejected_alone() -> None:
    large = b'{"pad": "' + b"x" * framing.MAX_ITEM_BYTES + b'"}'
    body = b"[" + b",".join([GOOD, b'{"meterId": "M-\xff"}', large, GOOD]) + b"]"
    result = outcomes(body)
    assert result[0] == result[3] == json.loads(GOOD)
    assert result[1].startswith("not valid UTF-8")
    assert result[2] == framing.TOO_LARGE


def test_malformed_elements_are_rejected_alone_when_the_array_can_be_framed() -> None:
    # Not JSON as a whole, so the scanner frames it; a lone surrogate is refused by the decoder.
    body = b"[" + b",".join([GOOD, b"{nope}", b"", b"[1}", b'"\\ud800"', GOOD]) + b",]"
    result = outcomes(body)
    assert result[0] == result[5] == json.loads(GOOD)
    assert [message.split(":")[0] for message in result[1:5]] == [
        "not valid JSON",
        "empty (a stray comma)",
        "not valid JSON",
        "not valid JSON",
    ]
    assert result[6] == "empty (a stray comma)"


@pytest.mark.usefixtures("splitter")
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "the body is empty"),
        (b" \r\n", "the body is empty"),
        (b"[]", framing.EMPTY_ARRAY),
        (b" [ \n ] ", framing.EMPTY_ARRAY),
        (b'[1, "abc', "not valid JSON: a string is not closed"),
        (b"[1, 2", "not valid JSON: the array is not closed"),
        (b"[1, [2, 3", "not valid JSON: the array is not closed"),
        (b"[1}, 2]", "not valid JSON: unexpected '}' at byte 2"),
        (b"[1] x", "not valid JSON: data after the array"),
        (b"[" + b"[" * (framing.BRACKET_BUDGET + 64) + b"]]", "nested deeper"),
    ],
)
def test_a_body_that_cannot_be_framed_is_one_rejection(body: bytes, message: str) -> None:
    assert len(result := outcomes(body)) == 1
    assert result[0].startswith(message)


@pytest.mark.usefixtures("splitter")
def test_the_batch_limit_is_checked_while_splitting() -> None:
    assert len(outcomes(b"[1, 2, 3]", max_items=3)) == 3
    with pytest.raises(framing.TooMany):
        framing.split(b"[1, 2, 3]", ndjson=False, max_items=2)
    with pytest.raises(framing.TooMany):  # 2.8 M tiny elements: counted, never built
        framing.split(b"[" + b"{}," * 2_800_000 + b"{}]", ndjson=False, max_items=10_000)


def test_ndjson_items_are_the_non_blank_lines() -> None:
    body = b'\n {"a": 1}\r\n\n \t \n[1, 2]  \r\n\x0b\nnull'
    assert outcomes(body, ndjson=True) == [{"a": 1}, [1, 2], None]
    assert outcomes(b"\n \n\r\n", ndjson=True) == ["holds no events: every line is blank"]
    with pytest.raises(framing.TooMany):
        framing.split(b"1\n2\n\n3\n", ndjson=True, max_items=2)


def test_ndjson_lines_are_judged_alone() -> None:
    long = b'{"pad": "' + b"x" * framing.MAX_ITEM_BYTES + b'"}'
    body = b"\n".join([GOOD, b'{"a": "\xff"}', DEEP_2000, DEEP_40, long, b"{oops", GOOD])
    result = outcomes(body, ndjson=True)
    assert result[0] == result[6] == json.loads(GOOD)
    assert result[1].startswith("not valid UTF-8")
    assert result[2] == result[3] == framing.TOO_DEEP
    assert result[4] == framing.TOO_LARGE
    assert result[5].startswith("not valid JSON")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (GOOD, json.loads(GOOD)),
        (DEEP_40, framing.TOO_DEEP),
        (DEEP_2000, framing.TOO_DEEP),
        (b"  7  ", 7),
        (b'{"a": 1} {"b": 2}', "not valid JSON"),
        (b'{"pad": "' + b"x" * framing.MAX_ITEM_BYTES + b'"}', framing.TOO_LARGE),
    ],
)
def test_a_single_value_body_is_one_item(body: bytes, expected: Any) -> None:
    [result] = outcomes(body)
    assert result == expected or (isinstance(expected, str) and result.startswith(expected))


def test_numbers_beyond_float_range_decode_to_infinity_not_an_error() -> None:
    # The event's range check then rejects the field that holds it, by name.
    assert framing.decode(b'{"v": 1e400, "w": -1e400}', shallow=True) == {
        "v": math.inf,
        "w": -math.inf,
    }
    with pytest.raises(NotJson, match="not decodable"):
        framing.decode(b'{"v": ' + b"9" * 5000 + b"}", shallow=True)
