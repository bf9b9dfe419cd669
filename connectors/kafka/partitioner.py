"""Which partition a key goes to: Kafka's default partitioner (murmur2), as the Java clients,
faust and librdkafka's ``murmur2_random`` partitioner compute it.

The worker needs it to tell, before producing, whether an entity key belongs to a partition it
holds (and so can be applied in place instead of going through the entity-messages topic).
"""

from __future__ import annotations

import struct

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` of ``data``, as an unsigned 32-bit integer."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    words = length // 4
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = data[words * 4 :]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of a (non-null) key among ``partitions``: ``toPositive(murmur2) % n``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class Partitioner:
    """:func:`partition_for` with a memory of the keys seen (entity keys repeat constantly);
    the memory is dropped whole when it reaches ``limit`` keys."""

    def __init__(self, partitions: int, limit: int = 1_000_000) -> None:
        self.partitions = partitions
        self.limit = limit
        self._known: dict[str, int] = {}

    def __call__(self, key: str) -> int:
        known = self._known.get(key)
        if known is None:
            if len(self._known) >= self.limit:
                self._known.clear()
            known = self._known[key] = partition_for(key.encode(), self.partitions)
        return known
