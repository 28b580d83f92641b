"""``python -m mien`` runs the command line."""

from mien.cli import main

raise SystemExit(main())
