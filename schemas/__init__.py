"""Contracts: Avro schemas, pydantic event models, serde, topic registry."""
