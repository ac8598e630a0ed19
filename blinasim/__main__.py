"""`python -m blinasim`: the same as the `blinasim` command."""
import sys

try:  # a SIGINT while the command is still being imported: one line, exit code 130
    from blinasim.cli import main
except KeyboardInterrupt:
    sys.stderr.write("blinasim: interrupted\n")
    sys.exit(130)

sys.exit(main())
