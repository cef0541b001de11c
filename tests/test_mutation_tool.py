"""tools/analysis/mutation.py reads mutmut's output and scores it (no mutmut
run here: its commands are replaced by recorded output)."""
import importlib.util
import json
import os

import pytest

from helpers import REPO_ROOT

SHOW = {  # ``mutmut show NAME`` of the survivors below
    'pkg.mod.x_f__mutmut_2': """# pkg.mod.x_f__mutmut_2: survived
--- pkg/mod.py
+++ pkg/mod.py
@@ -1,3 +1,3 @@
 def f(x):
-    return x * 4
+    return x * 5""",
    'pkg.mod.xǁBoxǁindex__mutmut_10': """# pkg.mod.xǁBoxǁindex__mutmut_10: no tests
--- pkg/mod.py
+++ pkg/mod.py
@@ -1,4 +1,3 @@
 def index(self, a,
-      b):
-    return (a,
+      b):
+    return (None,""",
}
RESULTS = """    pkg.mod.x_f__mutmut_1: killed
    pkg.mod.x_f__mutmut_2: survived
    pkg.mod.x_f__mutmut_3: timeout
    pkg.mod.xǁBoxǁindex__mutmut_10: no tests
    pkg.mod.xǁBoxǁindex__mutmut_11: not checked
"""
DOC = """# Testing

<!-- mutation-table-start -->
| file | mutants | killed | equivalent | survived | score | tests | date | machine |
|---|---|---|---|---|---|---|---|---|
| `pkg/mod.py` | 9 | 1 | 0 | 8 | 11.1 % | `old` | then | there |
| `pkg/zzz.py` | 2 | 2 | 0 | 0 | 100.0 % | `t` | then | there |
<!-- mutation-table-end -->
after
"""


def load_tool():
    path = os.path.join(REPO_ROOT, 'tools', 'analysis', 'mutation.py')
    spec = importlib.util.spec_from_file_location('mutation_tool', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_a_run_is_read_scored_and_written(tmp_path, monkeypatch, capsys):
    tool = load_tool()
    monkeypatch.setattr(tool, 'WORK', str(tmp_path))
    monkeypatch.setattr(tool, 'mutmut', lambda workdir, *args: (
        RESULTS if args[0] == 'results' else SHOW[args[1]]))
    (tmp_path / 'pkg_mod.py').mkdir()
    (tmp_path / 'pkg_mod.py' / 'run.json').write_text(json.dumps(dict(
        file='pkg/mod.py', tests=['tests/test_mod.py'], seconds=120,
        date='2026-01-01 00:00 UTC', machine='x86_64, 2 CPUs')))
    record = tool.run_file('pkg/mod.py', ['tests/test_mod.py'], fresh=False)
    assert len(record['statuses']) == 5
    assert record['descriptions'] == {
        'pkg.mod.x_f__mutmut_2': 'f: return x * 4 -> return x * 5',
        'pkg.mod.xǁBoxǁindex__mutmut_10':
        'Box.index: b): / return (a, -> b): / return (None,'}

    equivalent = {('pkg/mod.py', 'f: return x * 4 -> return x * 5'),
                  ('pkg/mod.py', 'f: gone -> away'), ('pkg/zzz.py', 'f: a -> b')}
    counts, survivors, stale = tool.classify(record, equivalent)
    # the timeout counts as killed; 'not checked' is left out
    assert counts == (4, 2, 1, 1, pytest.approx(200 / 3))
    assert survivors == ['Box.index: b): / return (a, -> b): / return (None, '
                         '(no tests: pkg.mod.xǁBoxǁindex__mutmut_10)']
    assert stale == ['f: gone -> away']

    doc = tmp_path / 'testing.md'
    doc.write_text(DOC)
    tool.write_doc([record], equivalent, doc=str(doc))
    lines = doc.read_text().splitlines()
    assert lines[:5] == DOC.splitlines()[:5]
    assert lines[5] == ('| `pkg/mod.py` | 4 | 2 | 1 | 1 | 66.7 % | `tests/test_mod.py` '
                        '| 2026-01-01 00:00 UTC (2 min) | x86_64, 2 CPUs |')
    assert lines[6:] == DOC.splitlines()[6:]
    assert 'listed as equivalent but killed or gone: f: gone -> away' in (
        capsys.readouterr().out)


def test_repeated_descriptions_are_numbered(tmp_path, monkeypatch):
    tool = load_tool()
    monkeypatch.setattr(tool, 'WORK', str(tmp_path))
    diff = '--- a\n+++ a\n@@ -1 +1 @@\n-    return a - b\n+    return a + b'
    results = ''.join(f'    m.x_f__mutmut_{i}: survived\n' for i in (2, 10))
    monkeypatch.setattr(tool, 'mutmut', lambda workdir, *args: (
        results if args[0] == 'results' else diff))
    (tmp_path / 'm.py').mkdir()
    (tmp_path / 'm.py' / 'run.json').write_text('{"file": "m.py"}')
    descriptions = tool.run_file('m.py', [], fresh=False)['descriptions']
    assert descriptions == {'m.x_f__mutmut_2': 'f: return a - b -> return a + b',
                            'm.x_f__mutmut_10': 'f: return a - b -> return a + b #2'}


def test_the_lists_name_files_that_exist():
    tool = load_tool()
    here = os.path.join(REPO_ROOT, 'tools', 'analysis')
    for source, tests in tool.read_rows(os.path.join(here, 'mutation_tests.txt')):
        for path in [source, *tests.split()]:
            assert os.path.isfile(os.path.join(REPO_ROOT, path)), path
    equivalents = tool.read_rows(os.path.join(here, 'mutation_equivalents.txt'))
    for source, rest in equivalents:
        assert os.path.isfile(os.path.join(REPO_ROOT, source)), source
        description, _, reason = rest.rpartition(' | ')
        assert ' -> ' in description and reason
