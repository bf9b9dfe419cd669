"""``python -m connectors.cli``: the ``batteryloop`` command."""

from connectors.cli.main import main

raise SystemExit(main())
