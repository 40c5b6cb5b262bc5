"""`python -m hpo_core.cli`: the `hpo` command."""

from __future__ import annotations

from hpo_core.cli import main

raise SystemExit(main())
