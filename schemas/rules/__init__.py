"""Versioned reference data that rules read (JSON files here), and their loaders."""
