"""glue-sweep: fine-tune compact BERT models on GLUE, sweep the paper's grid, build leaderboards.

Data flow, one way: spec (sweep file -> trials) -> train or fused (a trial or a unit of trials
-> per-epoch dev evaluations) -> sweep (Ray Tune; the recorder) -> store (result records) ->
results (leaderboards, exports) -> submit. ARCHITECTURE.md maps the subpackages; each one's
``__init__`` docstring maps its modules.
"""

from pathlib import Path

__version__ = "0.1.0"

PACKAGE = Path(__file__).resolve().parent


def shipped(kind: str) -> Path:
    """The shipped ``tasks`` or ``sweeps`` directory: package data in an installed wheel, the
    top-level folder of the source tree (their source) otherwise."""
    installed = PACKAGE / "_shipped" / kind
    return installed if installed.is_dir() else PACKAGE.parent / kind
