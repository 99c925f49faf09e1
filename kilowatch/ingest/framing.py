"""Splits an ingest body into its items before decoding any of them, within fixed bounds (SPEC §2).

A JSON array is split at its top-level commas before any element is decoded, so the batch limit
is checked while splitting: by msgspec into raw slices when the array is well-formed JSON with
few enough commas for that list to stay small, else by a regex scanner that knows strings and
brackets but builds no objects. NDJSON items are its non-blank lines; any other body is one
item. Each item is then decoded on its own, so one that is too large, nested too deep, not
UTF-8 or not JSON is rejected on its own index and its neighbours are still judged (and
stored). The bounds, each judged before an item is decoded:

- an item is at most MAX_ITEM_BYTES (an event is a few hundred bytes), which also bounds what
  decoding one can cost;
- an item nests at most MAX_DEPTH levels (an envelope nests two);
- a body whose array cannot be framed (an unterminated string or array, a stray `}`, data after
  the array, or more than BRACKET_BUDGET brackets nested deeper than MAX_DEPTH, which would cost
  a Python step each to skip) is not JSON as a whole: one rejection, at index 0.

Splitting is linear in the body: about 0.2 µs per event with msgspec, 1.4 µs with the scanner,
and at worst (8 MiB of nested brackets the scanner has to walk) about half a second.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

MAX_ITEM_BYTES = 16 * 1024
MAX_DEPTH = 32
BRACKET_BUDGET = 1 << 16

# float_hook: a number beyond float range (1e400) becomes inf, which the event's range check
# then rejects on its own field, instead of failing the whole item.
_decode = msgspec.json.Decoder(float_hook=float).decode
_decode_raw = msgspec.json.Decoder(list[msgspec.Raw]).decode
# msgspec's split builds a slice object (about 56 bytes) per element before the count can be
# checked; bodies with more commas than this many per allowed event take the scanner.
_RAW_COMMAS_PER_ITEM = 16

_STRING = rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
_ATOM = rb'[^"\[\]{}]++'  # numbers, literals, commas, colons, white space (and junk)


def _nested(levels: int) -> bytes:
    """A bracketed structure nesting at most `levels` levels; which bracket closes which is left
    to the decoder (checking it would double the pattern per level)."""
    inner = _ATOM + b"|" + _STRING
    if levels > 1:
        inner += b"|" + _nested(levels - 1)
    return rb"[\[{](?:" + inner + rb")*+[\]}]"


_NESTED = _nested(MAX_DEPTH)
# An array element up to the comma or `]` that ends it, or up to whatever stops the scan.
_ELEMENT = re.compile(rb'(?:[^"\[\]{},]++|' + _STRING + b"|" + _NESTED + rb")*+", re.S)
# A whole item nesting at most MAX_DEPTH levels (a superset of such JSON values).
_SHALLOW = re.compile(rb"(?:" + _ATOM + b"|" + _STRING + b"|" + _NESTED + rb")*+", re.S)
# Up to the next bracket (or unterminated string).
_TO_BRACKET = re.compile(rb"(?:" + _ATOM + b"|" + _STRING + rb")*+", re.S)
_SPACE = re.compile(rb"[ \t\r\n]*+")
# A non-blank line from its first non-space byte; white-space-only lines never match, so a
# body of blank lines costs no Python step per line.
_LINE = re.compile(rb"\S[^\r\n]*")
_WHITE = b" \t\r\n"
_OPENERS, _CLOSERS = b"[{", b"]}"
_COMMA, _END = ord(","), ord("]")

TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"
TOO_LARGE = f"larger than {MAX_ITEM_BYTES} bytes"
EMPTY_ARRAY = "an empty array holds no events"


class NotJson(ValueError):
    """An item (or the whole body) that cannot be decoded; the message says why."""


class TooMany(Exception):
    """More items than the request may carry."""


Item = bytes | NotJson


def split(body: bytes, *, ndjson: bool, max_items: int) -> tuple[list[Item], bool]:
    """The body's items, undecoded, and whether all are known to nest at most MAX_DEPTH levels.

    Raises TooMany past `max_items` items, before decoding any.
    """
    try:
        if ndjson:
            return _lines(body, max_items), False
        start = _SPACE.match(body).end()  # type: ignore[union-attr]
        if start == len(body):
            return [NotJson("the body is empty")], True
        if body[start] != ord("["):
            return [_sized(body[start:].rstrip(_WHITE))], False  # one event
        if body.count(b",") < _RAW_COMMAS_PER_ITEM * max_items:
            try:
                raws = _decode_raw(body)
            except (msgspec.DecodeError, RecursionError):  # not JSON somewhere, or deep
                pass
            else:
                if len(raws) > max_items:
                    raise TooMany()
                items = [_sized(memoryview(raw)) for raw in raws]
                return items or [NotJson(EMPTY_ARRAY)], False
        return _elements(body, start + 1, max_items), True
    except NotJson as exc:
        return [exc], True


def decode(raw: bytes, *, shallow: bool) -> Any:
    """One item's value; NotJson says why not. `shallow`: known to nest at most MAX_DEPTH."""
    deep = (
        not shallow
        and raw.count(b"[") + raw.count(b"{") > MAX_DEPTH
        and not _SHALLOW.fullmatch(raw)
    )
    try:
        value = _decode(raw)
    except RecursionError:
        raise NotJson(TOO_DEEP) from None
    except UnicodeDecodeError as exc:
        raise NotJson(f"not valid UTF-8 (at byte {exc.start})") from None
    except msgspec.ValidationError as exc:  # untyped: an integer beyond what Python takes
        raise NotJson(f"not decodable: {exc}") from None
    except msgspec.DecodeError as exc:
        raise NotJson(f"not valid JSON: {exc}") from None
    if deep:  # valid JSON the shallow pattern refused: only depth does that
        raise NotJson(TOO_DEEP)
    return value


def decode_value(raw: bytes) -> Any:
    """A body that is one JSON value (not an event batch), within an item's bounds."""
    if len(raw) > MAX_ITEM_BYTES:
        raise NotJson(TOO_LARGE)
    return decode(raw, shallow=False)


def _sized(raw: bytes | memoryview) -> Item:
    return NotJson(TOO_LARGE) if len(raw) > MAX_ITEM_BYTES else bytes(raw)


def _lines(body: bytes, max_items: int) -> list[Item]:
    items: list[Item] = []
    for line in _LINE.finditer(body):
        if len(items) == max_items:
            raise TooMany()
        start, end = line.span()
        items.append(NotJson(TOO_LARGE) if end - start > MAX_ITEM_BYTES else line[0])
    return items or [NotJson("holds no events: every line is blank")]


def _elements(body: bytes, pos: int, max_items: int) -> list[Item]:
    """The elements of the array whose `[` is just before `pos`."""
    size = len(body)
    pos = _SPACE.match(body, pos).end()  # type: ignore[union-attr]
    if pos < size and body[pos] == _END:
        _after_array(body, pos + 1)
        return [NotJson(EMPTY_ARRAY)]
    items: list[Item] = []
    budget = BRACKET_BUDGET
    while True:
        start, deep = pos, False
        while True:
            pos = _ELEMENT.match(body, pos).end()  # type: ignore[union-attr]
            if pos == size:
                raise NotJson("not valid JSON: the array is not closed")
            byte = body[pos]
            if byte in (_COMMA, _END):
                break
            if byte not in _OPENERS:
                raise NotJson(
                    "not valid JSON: a string is not closed"
                    if byte == ord('"')
                    else f"not valid JSON: unexpected {chr(byte)!r} at byte {pos}"
                )
            pos, budget = _skip_nested(body, pos, budget)
            deep = True
        if len(items) == max_items:
            raise TooMany()
        raw = body[start:pos].strip(_WHITE)
        if deep:
            items.append(NotJson(TOO_DEEP))
        else:
            items.append(_sized(raw) if raw else NotJson("empty (a stray comma)"))
        pos += 1
        if byte == _END:
            _after_array(body, pos)
            return items


def _skip_nested(body: bytes, pos: int, budget: int) -> tuple[int, int]:
    """Past the bracketed structure at `pos`, too deep for the pattern, a bracket at a time."""
    depth = 0
    while True:
        byte = body[pos]
        if byte in _OPENERS:
            depth += 1
        elif byte in _CLOSERS:
            depth -= 1
        else:
            raise NotJson("not valid JSON: a string is not closed")
        budget -= 1
        if budget < 0:
            raise NotJson(f"{TOO_DEEP}, with more than {BRACKET_BUDGET} brackets to skip")
        pos += 1
        if depth == 0:
            return pos, budget
        pos = _TO_BRACKET.match(body, pos).end()  # type: ignore[union-attr]
        if pos == len(body):
            raise NotJson("not valid JSON: the array is not closed")


def _after_array(body: bytes, pos: int) -> None:
    if _SPACE.match(body, pos).end() != len(body):  # type: ignore[union-attr]
        raise NotJson("not valid JSON: data after the array")
