"""``python -m simscale``: the same as the ``simscale`` command."""

from simscale.cli import main

raise SystemExit(main())
