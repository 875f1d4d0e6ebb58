"""``python -m stream0d_nb.cli``: the ``stream0d`` command without its console script."""

import sys

from stream0d_nb.cli import main

sys.exit(main())
