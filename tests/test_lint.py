"""ruff (pycodestyle, pyflakes, isort rules) over the whole repository."""
import shutil
import subprocess

from helpers import REPO_ROOT


def test_ruff_is_clean():
    ruff = shutil.which('ruff')
    assert ruff, 'ruff is a test requirement (pip install -e ".[tests]")'
    result = subprocess.run([ruff, 'check', '.'], cwd=REPO_ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
