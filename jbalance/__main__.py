"""``python -m jbalance``: the same as the ``jbalance`` console script."""

import sys

from jbalance.cli import main

if __name__ == "__main__":
    sys.exit(main())
