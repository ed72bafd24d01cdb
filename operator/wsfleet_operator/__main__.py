"""`python -m wsfleet_operator` runs the wsfleet command (the image's entry point)."""

import sys

from wsfleet_operator.cli import main

sys.exit(main())
