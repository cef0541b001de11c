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


def test_shell_scripts_parse():
    """`bash -n` over tools/*.sh and .ci/run: most of them only run on
    machines CI does not have (the GPU machine, a cluster)."""
    import glob
    scripts = sorted(glob.glob(f'{REPO_ROOT}/tools/*.sh')) + [
        f'{REPO_ROOT}/.ci/run']
    assert len(scripts) >= 5
    for script in scripts:
        result = subprocess.run(['bash', '-n', script], capture_output=True,
                                text=True)
        assert result.returncode == 0, f'{script}: {result.stderr}'
