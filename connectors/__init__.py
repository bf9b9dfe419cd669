"""The edges: settings, producer SDK, file sources, embedded brokers, command line."""
