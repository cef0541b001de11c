"""Mutation testing of the core with mutmut, each file against its own tests.

Runs mutmut (``requirements/mutation.txt``) on each file in its own folder
``work_dirs/mutation/<file>/`` with the tests of ``mutation_tests.txt`` and
writes killed / (mutants - equivalent) into docs/testing.md, which explains
the method; equivalent mutants are the survivors in mutation_equivalents.txt.

Example::

    nice -n 15 python tools/analysis/mutation.py mmdidb/models/layers/haar.py
"""
import argparse
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import time

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(osp.dirname(HERE))
WORK = osp.join(ROOT, 'work_dirs', 'mutation')


def read_rows(path):
    """The ``[first field, rest]`` of each ``a | b`` line, less comments."""
    with open(path) as f:
        return [[part.strip() for part in line.split('|', 1)] for line in f
                if line.strip() and not line.startswith('#')]


def mutmut(workdir, *args):
    """Run the ``mutmut`` beside this Python in ``workdir``; return its output."""
    exe = osp.join(osp.dirname(sys.executable), 'mutmut')
    # one thread: two OpenMP threads on a loaded machine spin and stretch the
    # tests towards mutmut's time limits (a mutant out of time counts as killed)
    out = subprocess.run([exe if osp.exists(exe) else 'mutmut', *args], cwd=workdir,
                         env=dict(os.environ, OMP_NUM_THREADS='1'), text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if out.returncode:
        sys.exit(f'mutmut {args} failed in {workdir}:\n{out.stdout[-3000:]}')
    return out.stdout


def describe(name, diff):
    """``function: line before -> line after`` from a ``mutmut show`` diff."""
    mangled = name.rpartition('.')[2].rpartition('__mutmut_')[0]  # x_f, xǁClassǁf
    func = mangled[2:].replace('ǁ', '.')
    body = diff.split('\n@@', 1)[-1].splitlines()[1:]
    return func + ': ' + ' -> '.join(' / '.join(
        line[1:].strip() for line in body if line[:1] == sign) for sign in '-+')


def run_file(relpath, tests, fresh=True):
    """Run mutmut on one file (unless not ``fresh``) and read its results.

    Returns:
        dict: The run's settings, each mutant's status, survivors' descriptions.
    """
    workdir = osp.join(WORK, relpath.replace('/', '_'))
    if fresh:
        shutil.rmtree(osp.join(workdir, 'mutants'), ignore_errors=True)  # stale copies
        os.makedirs(workdir, exist_ok=True)
        for link in ('mmdidb', 'tests', 'configs', 'pytest.ini'):
            if not osp.lexists(osp.join(workdir, link)):
                os.symlink(osp.join(ROOT, link), osp.join(workdir, link))
        settings = dict(source_paths=['mmdidb'], only_mutate=[relpath],
                        do_not_mutate_patterns=[r'^\s*raise\b'],  # error messages
                        also_copy=['configs', 'pytest.ini'],
                        pytest_add_cli_args=['-n', '0'],  # no xdist (pytest.ini)
                        pytest_add_cli_args_test_selection=tests,
                        timeout_multiplier=['50'])  # the load changes during a run
        with open(osp.join(workdir, 'setup.cfg'), 'w') as f:
            f.write('[mutmut]\n' + ''.join(f'{key} =' + '\n    '.join(['', *values])
                                           + '\n' for key, values in settings.items()))
        start = time.time()
        mutmut(workdir, 'run', '--max-children', '1')  # one mutant at a time
        with open(osp.join(workdir, 'run.json'), 'w') as f:
            json.dump(dict(file=relpath, tests=tests, seconds=time.time() - start,
                           date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
                           machine=f'{os.uname().machine}, {os.cpu_count()} CPUs '
                           '(shared, loaded)'), f)
    with open(osp.join(workdir, 'run.json')) as f:
        record = json.load(f)
    record['statuses'] = dict(re.findall(r'^\s+(\S+__mutmut_\d+): (.+?)\s*$', mutmut(
        workdir, 'results', '--all', 'true'), re.M))
    record['descriptions'], seen = {}, {}
    for name, status in record['statuses'].items():  # in mutmut's order
        if status in ('survived', 'no tests'):
            text = describe(name, mutmut(workdir, 'show', name))
            seen[text] = seen.get(text, 0) + 1  # repeats in a function: #2, #3
            record['descriptions'][name] = text + f' #{seen[text]}' * (seen[text] > 1)
    return record


def classify(record, equivalents):
    """Score one record; timeouts count as killed, untested mutants as survived.

    Returns:
        tuple: ``(mutants, killed, equivalent, survived, score)``, the survivors
        not listed, and the file's listed equivalents that did not survive.
    """
    known = {desc for where, desc in equivalents if where == record['file']}
    alive, statuses = record['descriptions'], record['statuses']
    killed = sum(s in ('killed', 'timeout', 'segfault') for s in statuses.values())
    survivors = [f'{desc} ({statuses[name]}: {name})'
                 for name, desc in alive.items() if desc not in known]
    mutants, equivalent = killed + len(alive), len(alive) - len(survivors)
    score = 100.0 * killed / (mutants - equivalent) if mutants > equivalent else 100.0
    stale = sorted(known - set(alive.values()))
    return (mutants, killed, equivalent, len(survivors), score), survivors, stale


def write_doc(records, equivalents, doc=osp.join(ROOT, 'docs', 'testing.md')):
    """Print each record's survivors and set its row of the table in ``doc``."""
    with open(doc) as f:
        text = f.read()
    start, end = '<!-- mutation-table-start -->\n', '<!-- mutation-table-end -->'
    old = re.search(re.escape(start) + '(.*?)' + re.escape(end), text, re.S)
    rows = {line.split('`')[1]: line for line in old[1].splitlines()[2:]}
    for r in records:
        counts, survivors, stale = classify(r, equivalents)
        stale = [f'listed as equivalent but killed or gone: {d}' for d in stale]
        print(r['file'], '{} mutants, {} killed, {} equivalent, {} survived: {:.1f} %'
              ' ({} not run)'.format(*counts, len(r['statuses']) - counts[0]),
              *survivors, *stale, sep='\n  ')
        tests = ', '.join(f'`{t}`' for t in r['tests'])
        rows[r['file']] = (
            '| `{}` | {} | {} | {} | {} | {:.1f} % | '.format(r['file'], *counts)
            + f'{tests} | {r["date"]} ({r["seconds"] / 60:.0f} min) | {r["machine"]} |')
    table = old[1].splitlines(True)[:2] + [rows[k] + '\n' for k in sorted(rows)]
    with open(doc, 'w') as f:
        f.write(text.replace(old[0], start + ''.join(table) + end))


def main():
    files = dict(read_rows(osp.join(HERE, 'mutation_tests.txt')))
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('files', nargs='*', metavar='FILE', help='files of '
                        'mutation_tests.txt (default: all; with --doc-only: all run)')
    parser.add_argument('--doc-only', action='store_true', help='only read the last '
                        'runs (after editing the equivalents or re-running mutants)')
    args = parser.parse_args()
    if set(args.files) - set(files):
        parser.error(f'not in mutation_tests.txt: {set(args.files) - set(files)}')
    chosen = args.files or [f for f in sorted(files) if not args.doc_only or osp.exists(
        osp.join(WORK, f.replace('/', '_'), 'run.json'))]
    listed = read_rows(osp.join(HERE, 'mutation_equivalents.txt'))
    equivalents = {(where, rest.rpartition(' | ')[0]) for where, rest in listed}
    write_doc([run_file(relpath, files[relpath].split(), not args.doc_only)
               for relpath in chosen], equivalents)


if __name__ == '__main__':
    main()
