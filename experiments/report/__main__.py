"""``python -m experiments.report [RESULTS]``: the report of every result below RESULTS."""

from experiments.report import main

raise SystemExit(main())
