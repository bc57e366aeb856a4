"""The import contracts (pyproject.toml, run by .ci/run) hold, and fail on a deliberate break."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports(project: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{project / 'platform'}{os.pathsep}{project}"}
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def project_copy(tmp_path) -> Path:
    """The sources and the contracts, copied, so a test may break them."""
    ignore = shutil.ignore_patterns("__pycache__", "emulator", "static")
    shutil.copytree(ROOT / "platform", tmp_path / "platform", ignore=ignore)
    shutil.copytree(ROOT / "connectors", tmp_path / "connectors", ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_contracts_hold():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and " 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("api/views.py", "from dashboard import forms", "The two faces do not import"),
        ("events/models.py", "import api.views", "No app imports a face"),
        ("tenants/models.py", "import upstream.models", "Platform apps form layers"),
        ("gateway/bearer.py", "from config import urls", "Apps use only config's leaf"),
        ("config/crypto.py", "import upstream.models", "config's leaf helpers import no app"),
    ],
)
def test_a_deliberate_violation_fails(project_copy, module, line, contract):
    source = project_copy / "platform" / module
    source.write_text(source.read_text() + f"\n{line}  # a deliberate violation\n")
    result = _lint_imports(project_copy)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = result.stdout.split("Broken contracts")[1]
    assert contract in broken
