"""``python -m benchmarks.hub``."""

from benchmarks.hub.run import main

raise SystemExit(main())
