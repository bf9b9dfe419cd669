"""The faust internals the worker relies on, where faust offers no public way: these fail if a
faust release changes them (see ``streams.worker.app.point_store_at`` and ``_apply``)."""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path

import faust
import faust.streams
from faust.events import Event
from faust.types.tuples import Message

from streams.worker.app import point_store_at


def event(app: faust.App, partition: int) -> Event:
    message = Message("t", partition, 0, 0.0, 0, [], b"k", b"v", None)
    return Event(app, b"k", b"v", {}, message)


def test_the_current_event_is_a_context_variable_that_current_event_reads(
    tmp_path: Path,
) -> None:
    assert isinstance(faust.streams._current_event, ContextVar)
    app = faust.App("seams-current", store="memory://", datadir=str(tmp_path), autodiscover=False)
    e = event(app, 2)
    point_store_at(e)
    assert faust.current_event() is e


def test_the_rocksdb_store_writes_and_reads_the_partition_of_the_current_event(
    tmp_path: Path,
) -> None:
    app = faust.App("seams-rocksdb", store="rocksdb://", datadir=str(tmp_path), autodiscover=False)
    table = app.Table("entities", partitions=4, key_type=bytes, value_type=bytes)
    store = table.data  # the public property: the table's store, a mutable mapping
    in_3, in_1 = event(app, 3), event(app, 1)  # held: faust keeps only a weak reference
    point_store_at(in_3)
    store[b"lot/L-1"] = b"state"  # no changelog record: the worker produces that itself
    assert store.get(b"lot/L-1") == b"state"
    point_store_at(in_1)
    assert store.get(b"lot/L-1") is None  # partition 1's database does not hold it
    assert (Path(store.partition_path(3))).exists()
