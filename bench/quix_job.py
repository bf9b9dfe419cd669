"""The Quix Streams reference for the telemetry job, run in its own virtual environment
(quixstreams pins an older confluent-kafka and pydantic than batteryloop): an Application over
the manufacture and use topics (concatenated dataframes), each event decoded from single-object
Avro with fastavro, a stateful per-battery update kept in Quix's RocksDB state, the battery's
document produced to the output topic.

    python quix_job.py --bootstrap HOST:PORT --topics T1,T2 --output TOPIC --group G
                       --state-dir DIR --schemas FILE

``FILE`` holds the writer schemas, ``{fingerprint hex: schema}``. Only quixstreams, fastavro and
the standard library are imported: batteryloop is not installed in that environment.
"""

from __future__ import annotations

import argparse
import io
import json
from decimal import Decimal
from typing import Any

import fastavro
from quixstreams import Application, State
from quixstreams.models.serializers import Deserializer, SerializationContext

HEADER = 10  # single-object Avro: 2 magic bytes and the 8-byte schema fingerprint


class SingleObjectAvro(Deserializer):
    def __init__(self, schemas: dict[bytes, Any]) -> None:
        super().__init__()
        self.schemas = schemas

    def __call__(self, value: bytes, ctx: SerializationContext) -> Any:
        writer = self.schemas[value[2:HEADER]]
        return fastavro.schemaless_reader(io.BytesIO(value[HEADER:]), writer, None)


def update(record: dict[str, Any], state: State) -> dict[str, Any]:
    """The battery's document after ``record`` (a manufacture or a use event)."""
    document = dict(state.get("passport", {}))
    document["battery_id"] = record["battery_id"]
    if "model" in record:
        document.update(model=record["model"], level=record["level"], chemistry=record["chemistry"])
    health = record.get("state_of_health")
    if isinstance(health, Decimal):
        document["state_of_health"] = str(health)
    document.setdefault("state_of_health", None)
    document["events"] = document.get("events", 0) + 1
    state.set("passport", document)
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("--bootstrap", "--topics", "--output", "--group", "--state-dir", "--schemas"):
        parser.add_argument(name, required=True)
    args = parser.parse_args()
    with open(args.schemas) as f:
        schemas = {bytes.fromhex(k): fastavro.parse_schema(v) for k, v in json.load(f).items()}
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel="WARNING",
        consumer_extra_config={"session.timeout.ms": 6000},
        producer_extra_config={"linger.ms": 20, "compression.type": "lz4"},
    )
    deserializer = SingleObjectAvro(schemas)
    made, used = (
        app.topic(name, key_deserializer="str", value_deserializer=deserializer)
        for name in args.topics.split(",")
    )
    for topic in (made, used):
        # Quix derives its changelog's retention from the input topics' "retention.ms", which
        # the embedded brokers' DescribeConfigs answer leaves out; their retention is unlimited.
        topic.broker_config.extra_config.setdefault("retention.ms", "-1")
    output = app.topic(args.output, key_serializer="str", value_serializer="json")
    frame = app.dataframe(made).concat(app.dataframe(used))
    frame = frame.apply(update, stateful=True)
    frame.to_topic(output)
    app.run()


if __name__ == "__main__":
    main()
