"""One module per ``batteryloop`` command: its options (``register``) and what it runs."""
