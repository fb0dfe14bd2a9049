"""``python -m keycell``: the command line (see :mod:`keycell.cli`)."""

from keycell.cli import main

raise SystemExit(main())
