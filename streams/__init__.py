"""Stream processors (faust-streaming): passports, lots, tallies and alerts."""
