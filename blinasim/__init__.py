"""blinasim: an agent-based mechanism simulator of blinatumomab therapy in B-ALL."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("blinasim")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
