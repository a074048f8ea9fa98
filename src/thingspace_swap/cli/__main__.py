"""``python -m thingspace_swap.cli``: the same as the ``thingspace-swap`` command."""

from __future__ import annotations

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
