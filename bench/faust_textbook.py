"""The textbook faust-streaming reference for the telemetry job: an agent iterating over the
stream (``async for``), fastavro decoding each event, a ``Table`` per battery updated with it,
and the battery's document sent to the output topic.

    python -m bench.faust_textbook --bootstrap HOST:PORT --topics T1,T2 --output TOPIC
                                   --data-dir DIR --web-port P --app-id ID
"""

from __future__ import annotations

import argparse
import io
import json
from decimal import Decimal
from typing import Any

import fastavro
import faust

from schemas import catalog

WRITERS = {v.fingerprint: v.parsed for v in catalog.by_fingerprint().values()}
HEADER = 10  # single-object Avro: 2 magic bytes and the 8-byte schema fingerprint


def decode(data: bytes) -> dict[str, Any]:
    record = fastavro.schemaless_reader(io.BytesIO(data[HEADER:]), WRITERS[data[2:HEADER]], None)
    assert isinstance(record, dict)  # every event schema is a record
    return record


def update(document: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The battery's document after ``record`` (a manufacture or a use event)."""
    out = dict(document)
    out["battery_id"] = record["battery_id"]
    if "model" in record:
        out.update(model=record["model"], level=record["level"], chemistry=record["chemistry"])
    health = record.get("state_of_health")
    if isinstance(health, Decimal):
        out["state_of_health"] = str(health)
    out.setdefault("state_of_health", None)
    out["events"] = out.get("events", 0) + 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("--bootstrap", "--topics", "--output", "--data-dir", "--app-id"):
        parser.add_argument(name, required=True)
    parser.add_argument("--web-port", type=int, required=True)
    args = parser.parse_args()
    app = faust.App(
        args.app_id,
        broker=f"kafka://{args.bootstrap}",
        store="rocksdb://",
        datadir=args.data_dir,
        web_port=args.web_port,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        topic_partitions=6,
        topic_replication_factor=1,
        broker_session_timeout=6,
        broker_rebalance_timeout=8,
        broker_heartbeat_interval=1.5,
        consumer_auto_offset_reset="earliest",
        producer_linger_ms=20,
        table_standby_replicas=0,
        autodiscover=False,
    )
    source = app.topic(
        *args.topics.split(","),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    output = app.topic(
        args.output, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    passports = app.Table("passports", default=dict, partitions=6)

    @app.agent(source)
    async def track(stream: Any) -> None:
        async for value in stream:
            record = decode(value)
            battery = record["battery_id"]
            document = update(passports[battery], record)
            passports[battery] = document
            await output.send(key=battery.encode(), value=json.dumps(document).encode())

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
