"""mypy over the whole tree, under the names the code imports.

The top-level folders install as stn_align.<folder> through setuptools' package-dir mapping, which
mypy cannot follow. So this builds a view (.mypy_cache/view/stn_align/, links to the top-level
folders; a fixed place, so that mypy's cache stays valid) and checks it, printing paths as they are
in the checkout.

    python scripts/typecheck.py            # what the tests and CI run
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "service", "training", "experiments")  # stn_align.<name> -> ROOT/<name>
SCRIPTS = ("bench",)  # plain folders checked as they are


def main() -> int:
    top = ROOT / ".mypy_cache" / "view"
    view = top / "stn_align"
    view.mkdir(parents=True, exist_ok=True)
    for name in PACKAGES:
        link = view / name
        if not link.is_symlink():
            link.symlink_to(ROOT / name, target_is_directory=True)
    args = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
    for name in PACKAGES:
        args += ["-p", f"stn_align.{name}"]
    for name in SCRIPTS:
        args += ["-p", name]
    env = {**os.environ, "MYPYPATH": os.pathsep.join([str(top), str(ROOT)])}
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    for prefix in (str(view) + os.sep, str(view.relative_to(ROOT)) + os.sep):
        output = output.replace(prefix, "")
    print(output, end="")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
