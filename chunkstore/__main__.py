"""``python -m chunkstore``: the same command line as the ``chunkstore`` script."""

import sys

from chunkstore.cli import main

if __name__ == "__main__":
    sys.exit(main())
