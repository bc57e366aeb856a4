"""The import contract (pyproject.toml, [tool.importlinter]) holds, and breaks on a violation."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports(tree: Path) -> subprocess.CompletedProcess:
    """lint-imports on a copy of the code at ``tree`` (its own pyproject and source roots)."""
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": f"{tree / 'platform'}:{tree}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _copy_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    ignore = shutil.ignore_patterns("__pycache__", "emulator", "migrations", "*.html")
    shutil.copytree(ROOT / "platform", tree / "platform", ignore=ignore)
    shutil.copytree(ROOT / "connectors", tree / "connectors", ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_connectors_importing_a_platform_app_breaks_the_contract(tmp_path):
    tree = _copy_tree(tmp_path)
    kept = _lint_imports(tree)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "Connector kinds import nothing from the platform apps" in kept.stdout

    # A tool reaching into the platform, as quickbooks/tools.py once did with upstream.access.
    leak = tree / "connectors" / "quickbooks" / "leak.py"
    leak.write_text("def grant():\n    from upstream.models import UpstreamConnection\n")
    broken = _lint_imports(tree)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "BROKEN" in broken.stdout
    assert "connectors.quickbooks.leak -> upstream.models" in broken.stdout
