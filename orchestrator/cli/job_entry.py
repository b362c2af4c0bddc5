"""The entrypoint of a sweep submitted as a Ray Job (``sweep.ray_job``), run on the head node by
the interpreter that ``submit-job --python`` names: it says which interpreter runs the job, then
checks that it has the project's dependencies (one line naming what is missing, exit 2, instead
of a traceback), then runs ``glue-sweep run``. Standard library only until then."""

from __future__ import annotations

import importlib.util
import platform
import sys

# import names of the dependencies a sweep's driver and its workers load (pyproject.toml)
NEEDS = ("torch", "transformers", "tokenizers", "pyarrow", "ray", "optuna", "pandas", "numpy", "yaml", "pydantic")
HELP = ("start Ray on every node from the project's environment (its python first on PATH when `ray start` runs), "
        "or submit with --python naming the head's interpreter of that environment")


def interpreter() -> str:
    return f"{sys.executable} (Python {platform.python_version()})"


def missing() -> list[str]:
    return [m for m in NEEDS if importlib.util.find_spec(m) is None]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    print(f"glue-sweep job: interpreter {interpreter()}", file=sys.stderr, flush=True)
    lacking = missing()
    if lacking:
        print(f"glue-sweep: error: the job's interpreter {interpreter()} lacks {', '.join(lacking)}: {HELP}",
              file=sys.stderr)
        return 2
    from .main import main as glue_sweep   # the CLI imports pyarrow, pandas, ...: only once they are known to be there

    return glue_sweep(argv)


if __name__ == "__main__":
    sys.exit(main())
