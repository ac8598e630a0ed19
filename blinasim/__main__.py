"""`python -m blinasim`: the same as the `blinasim` command."""
import sys

from blinasim.cli import main

sys.exit(main())
