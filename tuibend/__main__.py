"""``python -m tuibend``: the ``tuibend`` command (how ``play`` starts its engine's process)."""

import sys

from tuibend.cli import main

sys.exit(main())
