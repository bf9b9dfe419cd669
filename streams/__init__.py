"""Stream processors: passports, lots, tallies and alerts (the domain core and the worker)."""
