"""``python -m lutmul``: the ``lutmul`` command line (lutmul.runtime.cli)."""

import sys

from .runtime.cli import main

sys.exit(main())
