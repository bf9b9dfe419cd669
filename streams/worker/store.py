"""Where a worker keeps the entity states of the partitions it holds: one store per partition.

A store holds encoded states (:func:`streams.domain.codec.encode_state`) by entity key, and the
*position*: the offset of the state changelog (``batteryloop.internal.state``, same partition)
up to which it holds every record. States and position are written in one atomic batch, so after
any crash a store is a prefix of its changelog and restoring means reading the changelog from
the position on. ``memory`` stores start empty (position: the beginning); ``rocksdb`` stores
persist under the data directory and survive a restart, including ``kill -9`` (RocksDB's
write-ahead log is written before a batch is acknowledged).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

#: Position of a store that holds nothing yet: read its changelog from the beginning.
BEGINNING = -1
#: The store's own bookkeeping key; entity keys start with a letter, so it never collides.
_POSITION = b"\x00position"


class PartitionStore(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def write(self, values: Mapping[bytes, bytes], position: int) -> None:
        """Store ``values`` and the changelog position they bring the store to, atomically."""

    def position(self) -> int:
        """The offset of the last changelog record the store holds (:data:`BEGINNING`: none)."""

    def items(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Entity keys starting with ``prefix`` and their values, in key order."""

    def close(self) -> None: ...


class MemoryStore:
    def __init__(self) -> None:
        self._values: dict[bytes, bytes] = {}
        self._position = BEGINNING

    def get(self, key: bytes) -> bytes | None:
        return self._values.get(key)

    def write(self, values: Mapping[bytes, bytes], position: int) -> None:
        self._values.update(values)
        self._position = max(self._position, position)

    def position(self) -> int:
        return self._position

    def items(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        # a snapshot: the HTTP views iterate while the loop writes
        snapshot = [(k, v) for k, v in list(self._values.items()) if k.startswith(prefix)]
        return iter(sorted(snapshot))

    def close(self) -> None:
        self._values.clear()


class RocksStore:
    """One RocksDB database per partition, ``<data_dir>/partition-<n>``."""

    def __init__(self, path: Path) -> None:
        from rocksdict import Options, Rdict, WriteBatch

        self.path = path
        self._batch_type = WriteBatch
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(path), Options(raw_mode=True))
        # the views read from another thread; closing must not race a read
        self._lock = threading.Lock()
        self._closed = False

    def get(self, key: bytes) -> bytes | None:
        with self._lock:
            if self._closed:
                return None
            value = self._db.get(key)
        return value if isinstance(value, bytes) else None

    def write(self, values: Mapping[bytes, bytes], position: int) -> None:
        batch = self._batch_type(raw_mode=True)
        for key, value in values.items():
            batch.put(key, value)
        batch.put(_POSITION, str(position).encode())
        with self._lock:
            self._db.write(batch)

    def position(self) -> int:
        raw = self._db.get(_POSITION)
        return int(raw) if isinstance(raw, bytes) else BEGINNING

    def items(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        start = prefix or b"\x01"  # past the bookkeeping key
        for key, value in self._db.items(from_key=start):
            if not isinstance(key, bytes) or not key.startswith(prefix):
                break  # raw mode: keys are bytes
            yield key, value

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    @staticmethod
    def destroy(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)


def open_store(kind: str, data_dir: Path, partition: int) -> PartitionStore:
    if kind == "memory":
        return MemoryStore()
    if kind == "rocksdb":
        return RocksStore(data_dir / f"partition-{partition}")
    raise ValueError(f"no store kind {kind!r} (memory or rocksdb)")
