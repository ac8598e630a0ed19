"""blinasim: an agent-based mechanism simulator of blinatumomab therapy in B-ALL."""
import os
from importlib.metadata import PackageNotFoundError, version

# Idle OpenMP threads of the kernels sleep instead of spinning between the short parallel
# regions of each step (much faster on a busy machine); set before any kernel is loaded.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    __version__ = version("blinasim")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
