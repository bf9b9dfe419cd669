"""How entity states (changelog values) and entity messages are written to Kafka, and read back.

Format
------
Both are MessagePack (``msgspec.msgpack``), maps with the field names of
:mod:`streams.domain.states` and :mod:`streams.domain.messages`; fields at their default value
are left out. Every state and every message carries its class in the field ``type`` as
``"<name>/<version>"``: ``{"type": "lot/2", "created": {...}, ...}``,
``{"type": "lot-created/2", "event_id": ..., ...}``. A small fixed-size record (a metal's
masses, a held profile) is written as an array, in field order. Dictionary keys are written
sorted, so equal states encode to equal bytes whatever order their facts arrived in (the
worker skips writing a state whose bytes did not change).

- A changelog value (one per table key) is one state.
- An entity-messages record (keyed by the entity key) is an array of messages for that key.

Versions, and reading older ones
--------------------------------
Version 1 was JSON: a state was a dictionary with short keys (``{"created": ..., "pv": 3}``),
a record a JSON array of ``{"m": "<kind>", "fact": {...}}``. A JSON text starts with ``{`` or
``[``, which no MessagePack map or array does (those bytes are small integers there), so the
first byte tells the versions apart. Version 1 is upgraded on reading, field by field
(:mod:`streams.domain.legacy`), and written back as version 2 the next time the entity changes.
A later version adds classes with a new tag and an upgrade from the one before; the decoder
keeps accepting every tag it ever wrote.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import msgspec

from streams.domain.legacy import upgrade_messages, upgrade_state
from streams.domain.messages import Message
from streams.domain.states import State

_ENCODER = msgspec.msgpack.Encoder(order="deterministic")
_STATE_DECODER = msgspec.msgpack.Decoder(State)
_MESSAGES_DECODER = msgspec.msgpack.Decoder(list[Message])
_JSON_OPENERS = (ord("{"), ord("["))


class UndecodableError(ValueError):
    """A changelog value or entity-messages record that no known version describes."""


def encode_state(state: State) -> bytes:
    return _ENCODER.encode(state)


def decode_state(key: str, data: bytes) -> State:
    """The state stored under ``key``, upgraded from an older version if need be."""
    try:
        if data[:1] and data[0] in _JSON_OPENERS:
            return upgrade_state(key, json.loads(data))
        return _STATE_DECODER.decode(data)
    except (msgspec.DecodeError, ValueError, KeyError, TypeError) as exc:
        raise UndecodableError(f"state of {key!r}: {exc}") from exc


def encode_messages(messages: list[Message]) -> bytes:
    return _ENCODER.encode(messages)


def decode_messages(key: str, data: bytes) -> list[Message]:
    """The messages of one entity-messages record for ``key``, upgraded if need be."""
    try:
        if data[:1] and data[0] in _JSON_OPENERS:
            return upgrade_messages(key, json.loads(data))
        return _MESSAGES_DECODER.decode(data)
    except (msgspec.DecodeError, ValueError, KeyError, TypeError) as exc:
        raise UndecodableError(f"messages for {key!r}: {exc}") from exc


def chunked_messages(messages: list[Message], limit: int) -> Iterator[bytes]:
    """``messages`` as records of at most ``limit`` bytes each (a lone message may exceed it),
    in order. Halving keeps the common case, everything in one record, to one encoding."""
    if not messages:
        return
    data = encode_messages(messages)
    if len(data) <= limit or len(messages) == 1:
        yield data
        return
    half = len(messages) // 2
    yield from chunked_messages(messages[:half], limit)
    yield from chunked_messages(messages[half:], limit)


def copy_state(state: State) -> State:
    """A deep copy of ``state`` (changing one leaves the other as it was)."""
    copied: State = _STATE_DECODER.decode(_ENCODER.encode(state))
    return copied
