"""`python -m r2kd_keras distill|export|evaluate ...`: the `r2kd` command."""

import sys

from r2kd_keras.cli import main

if __name__ == "__main__":
    sys.exit(main())
