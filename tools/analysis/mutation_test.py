"""Mutation testing of the method and bit-level core, one mutant at a time.

Each mutant is one small change of one source file (an arithmetic or
comparison operator swapped, a constant nudged, a unary minus or a
``.detach()``/``.clamp(...)`` removed, ``and``/``or``, ``max``/``min``
swapped, a bare ``if x:`` negated, ...). A mutant is *killed* when that
file's own tests (see ``TESTS``) fail on it, and *survives* when they all
pass.

Cheap per mutant on a loaded 2-core machine: the parent imports ``mmdidb``
(15 s here) once, then forks one child per mutant. The child swaps the
``__code__`` of the one function holding the change (every reference to the
function, registries and ``from x import f`` included, sees the mutant),
runs ``pytest -x`` on the file's tests in-process and exits with pytest's
status. A child running past ``--timeout`` counts as killed. Only code inside
functions and module-level ``NAME = value`` constants is mutated: class
bodies, decorators, default arguments and annotations are not, nor
``extra_repr``/``__repr__`` (display only) and ``raise`` statements.

Mutants that no test can kill (same behaviour) are listed with a one-line
reason in ``tools/analysis/mutation_equivalents.txt``; the score is
``killed / (mutants - equivalent)``. Results are merged into the table of
``docs/testing.md``; the equivalent and surviving mutants are listed there.

Example::

    nice -n 15 python tools/analysis/mutation_test.py \\
        --files mmdidb/models/layers/haar.py mmdidb/ops/packing.py
"""
import argparse
import ast
import copy
import datetime
import glob
import json
import os
import os.path as osp
import platform
import re
import signal
import sys
import time
import types

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DOC = osp.join(ROOT, 'docs', 'testing.md')
EQUIVALENTS = osp.join(ROOT, 'tools', 'analysis', 'mutation_equivalents.txt')

# Each file's own tests. ``tests/**/test_<stem>_maths.py`` is added when it
# exists.
TESTS = {
    'mmdidb/models/layers/binarizers.py': ['tests/models/test_binarizers.py',
                                           'tests/models/test_fast_training_graph.py'],
    'mmdidb/models/layers/diba.py': ['tests/models/test_diba.py',
                                     'tests/models/test_didb_switches.py'],
    'mmdidb/models/layers/similarity.py': ['tests/models/test_diba.py',
                                           'tests/models/test_didb_switches.py',
                                           'tests/models/test_fast_training_graph.py'],
    'mmdidb/models/layers/haar.py': ['tests/models/test_haar.py'],
    'mmdidb/models/layers/irprelu.py': ['tests/models/test_irprelu.py',
                                        'tests/models/test_fast_training_graph.py'],
    'mmdidb/models/layers/local_difference.py': [
        'tests/models/test_diba.py', 'tests/models/test_didb_switches.py'],
    'mmdidb/models/layers/wrapped_linear.py':
    ['tests/deploy/test_deploy_layers.py', 'tests/models/test_fast_training_graph.py'],
    'mmdidb/models/layers/binary_linear.py':
    ['tests/deploy/test_deploy_layers.py', 'tests/models/test_fast_training_graph.py',
     'tests/deploy/test_deploy_fused.py'],
    'mmdidb/ops/packing.py': ['tests/ops/test_ops_packing.py',
                              'tests/ops/test_ops_validation.py'],
    'mmdidb/ops/reference.py': ['tests/ops/test_ops_products.py'],
    'mmdidb/ops/products.py': ['tests/ops/test_ops_products.py',
                               'tests/ops/test_ops_validation.py'],
    'mmdidb/models/deploy/checkpoint.py':
    ['tests/deploy/test_deploy_maths.py', 'tests/deploy/test_deploy_model.py'],
    'mmdidb/models/deploy/packed_ops.py':
    ['tests/deploy/test_deploy_layers.py', 'tests/deploy/test_deploy_fused.py',
     'tests/ops/test_ops_fused.py'],
    'mmdidb/models/deploy/switch.py':
    ['tests/deploy/test_deploy_maths.py', 'tests/deploy/test_deploy_model.py',
     'tests/deploy/test_deploy_fused.py', 'tests/deploy/test_graph_runtime.py'],
}

# ``math.sqrt(x)`` is a function call, not a method to drop
MODULES = {'math', 'torch', 'F', 'np', 'nn'}
SKIP_FUNCTIONS = {'extra_repr', '__repr__'}
DROP_METHODS = {'detach', 'clamp', 'clamp_min', 'clamp_max', 'abs', 'round',
                'floor', 'ceil', 'sign', 'sqrt', 'exp', 'float'}
BINOP_SWAPS = {
    ast.Add: [ast.Sub], ast.Sub: [ast.Add], ast.Mult: [ast.Div],
    ast.Div: [ast.Mult], ast.FloorDiv: [ast.Mult], ast.Mod: [ast.FloorDiv],
    ast.Pow: [ast.Mult], ast.LShift: [ast.RShift], ast.RShift: [ast.LShift],
    ast.BitAnd: [ast.BitOr], ast.BitOr: [ast.BitAnd],
    ast.BitXor: [ast.BitOr],
}
CMP_SWAPS = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot,
    ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In,
}


class Mutant:
    """One change: ``node`` is replaced by ``new`` inside ``qualname``."""

    def __init__(self, node, new, qualname, module_name):
        self.node = node
        self.new = new
        self.qualname = qualname  # None: module-level constant ``NAME``
        self.module_name = module_name
        self.line = node.lineno
        if isinstance(node, (ast.If, ast.IfExp, ast.While)):
            node, new = node.test, new.test  # name the condition only
        self.before = _short(ast.unparse(node))
        self.after = _short(ast.unparse(new))
        self.const_name = self.const_stmt = None
        self.key = ''  # set once all mutants are known (occurrence index)


def _short(text, width=70):
    text = ' '.join(text.split())
    return text if len(text) <= width else text[:width - 3] + '...'


def _variants(node):
    """The replacement nodes of ``node`` (new nodes, ``node`` untouched)."""
    out = []
    if isinstance(node, (ast.BinOp, ast.AugAssign)):
        for op in BINOP_SWAPS.get(type(node.op), []):
            new = copy.copy(node)
            new.op = op()
            out.append(new)
    elif isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in CMP_SWAPS:
                new = copy.copy(node)
                new.ops = list(node.ops)
                new.ops[i] = CMP_SWAPS[type(op)]()
                out.append(new)
    elif isinstance(node, ast.BoolOp):
        new = copy.copy(node)
        new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        out.append(new)
    elif isinstance(node, ast.UnaryOp):
        if isinstance(node.op, (ast.USub, ast.Not, ast.Invert)):
            out.append(node.operand)
    elif isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool):
            news = [not value]
        elif isinstance(value, int):
            news = {0: [1], 1: [0, 2]}.get(value, [value + 1])
        elif isinstance(value, float):
            news = {0.0: [1.0], 1.0: [0.0, 2.0]}.get(value, [value * 2])
        else:
            news = []
        out.extend(ast.Constant(value=v) for v in news)
    elif isinstance(node, (ast.If, ast.IfExp, ast.While)):
        # bare truth tests; comparisons and not/and/or have their own
        if isinstance(node.test, (ast.Name, ast.Attribute, ast.Call)):
            new = copy.copy(node)
            new.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
            out.append(new)
    elif isinstance(node, ast.Call):
        func = node.func
        if (isinstance(func, ast.Attribute) and func.attr in DROP_METHODS
                and not (isinstance(func.value, ast.Name)
                         and func.value.id in MODULES)):
            out.append(func.value)
        elif isinstance(func, ast.Name) and func.id in ('max', 'min'):
            new = copy.copy(node)
            new.func = ast.Name(id='min' if func.id == 'max' else 'max',
                                ctx=ast.Load())
            out.append(new)
    return out


def _is_docstring(stmt):
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str))


def _walk_mutable(node, skip=False):
    """Yield the nodes of an expression/statement tree that may be mutated."""
    if isinstance(node, (ast.Raise, ast.JoinedStr)):
        return
    if isinstance(node, ast.arg):  # annotations
        return
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        # nested function: its body only
        if not isinstance(node, ast.Lambda):
            for stmt in node.body:
                if not _is_docstring(stmt):
                    yield from _walk_mutable(stmt)
        else:
            yield from _walk_mutable(node.body)
        return
    if isinstance(node, ast.AnnAssign):
        if node.value is not None:
            yield from _walk_mutable(node.value)
        return
    yield node
    for child in ast.iter_child_nodes(node):
        yield from _walk_mutable(child)


def collect_mutants(source, module_name):
    """All mutants of a module's source, in source order."""
    tree = ast.parse(source)
    lines = source.splitlines()
    found = []

    def add(nodes, qualname, const=None):
        for node in nodes:
            for new in _variants(node):
                m = Mutant(node, new, qualname, module_name)
                if const is not None:
                    m.const_name, m.const_stmt = const.targets[0].id, const
                found.append(m)

    def visit_body(body, prefix):
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if stmt.name in SKIP_FUNCTIONS:
                    continue
                qual = prefix + stmt.name
                for inner in stmt.body:
                    if not _is_docstring(inner):
                        add(_walk_mutable(inner), qual)
            elif isinstance(stmt, ast.ClassDef):
                visit_body(stmt.body, prefix + stmt.name + '.')
            elif (not prefix and isinstance(stmt, ast.Assign)
                  and len(stmt.targets) == 1
                  and isinstance(stmt.targets[0], ast.Name)):
                add(_walk_mutable(stmt.value), None, stmt)

    visit_body(tree.body, '')
    counts = {}
    for m in found:
        code = _short(lines[m.line - 1], 60)
        base = (f'{m.qualname or m.const_name}: `{code}`: '
                f'{m.before} -> {m.after}')
        counts[base] = counts.get(base, 0) + 1
        m.key = f'{base} #{counts[base]}'
    return tree, found


def _replace(tree, old, new):
    """Replace ``old`` by ``new`` in ``tree``; return an undo callable."""
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                return lambda: setattr(parent, field, old)
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is old:
                        value[i] = new
                        return lambda: value.__setitem__(i, old)
    raise LookupError('node not found')


def _find_code(code, qualname):
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            if const.co_qualname == qualname:
                return const
            found = _find_code(const, qualname)
            if found is not None:
                return found
    return None


def _function_of(module, qualname):
    obj = module
    parts = qualname.split('.')
    for i, part in enumerate(parts):
        holder = obj
        obj = (vars(holder).get(part) if isinstance(holder, type)
               else getattr(holder, part))
        if obj is None:
            raise LookupError(qualname)
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        if isinstance(obj, property) and i == len(parts) - 1:
            obj = obj.fget
    while getattr(obj, '__code__', None) is None or (
            obj.__code__.co_qualname != qualname
            and hasattr(obj, '__wrapped__')):
        obj = obj.__wrapped__
    return obj


def apply_mutant(tree, mutant, path):
    """Prepare the in-process patch of one mutant; return a callable."""
    undo = _replace(tree, mutant.node, mutant.new)
    try:
        ast.fix_missing_locations(tree)
        if mutant.qualname is not None:
            code = compile(tree, path, 'exec')
            new_code = _find_code(code, mutant.qualname)
            if new_code is None:
                raise LookupError(mutant.qualname)

            def patch(module):
                _function_of(module, mutant.qualname).__code__ = new_code
        else:
            expr = ast.Expression(body=mutant.const_stmt.value)
            ast.fix_missing_locations(expr)
            value_code = compile(expr, path, 'eval')
            name = mutant.const_name

            def patch(module):
                setattr(module, name, eval(value_code, vars(module)))
        return patch
    finally:
        undo()


def run_child(patch, module_name, tests, timeout, log):
    """Fork, patch, run pytest; return 'killed', 'survived' or 'timeout'."""
    pid = os.fork()
    if pid == 0:  # child
        rc = 3
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            import importlib

            import pytest
            if patch is not None:
                patch(importlib.import_module(module_name))
            # in this process: pytest.ini's '-n auto' would start workers
            # that import the unmutated package
            rc = pytest.main(['-x', '-q', '-p', 'no:cacheprovider', '-n', '0',
                              *tests])
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(int(rc))
    deadline = time.time() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return ('survived' if code == 0 else 'killed'), code
        if time.time() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return 'timeout', None
        time.sleep(0.05)


def tests_for(relpath):
    """The file's tests, its fast ``test_<stem>_maths.py`` first (-x)."""
    stem = osp.splitext(osp.basename(relpath))[0]
    if stem == '__init__':
        stem = osp.basename(osp.dirname(relpath))
    maths = sorted(glob.glob(osp.join(ROOT, 'tests', '**',
                                      f'test_{stem}_maths.py'),
                             recursive=True))
    tests = [osp.relpath(t, ROOT) for t in maths] + list(TESTS[relpath])
    # fast maths tests first: -x stops at the first failure
    return sorted(dict.fromkeys(tests), key=lambda t: '_maths' not in t)


def read_equivalents():
    """``{file: {key: reason}}`` from the equivalents file."""
    table = {}
    if not osp.exists(EQUIVALENTS):
        return table
    with open(EQUIVALENTS) as f:
        for line in f:
            line = line.rstrip('\n')
            if not line.strip() or line.startswith('#'):
                continue
            where, key, reason = (part.strip() for part in line.split(' | ', 2))
            table.setdefault(where, {})[key] = reason
    return table


def run_file(relpath, timeout, log_dir, only=None, tests=None):
    """Run every mutant of one file; return its raw record."""
    module_name = relpath[:-3].replace('/', '.')
    if module_name.endswith('.__init__'):
        module_name = module_name[:-len('.__init__')]
    path = osp.join(ROOT, relpath)
    with open(path) as f:
        source = f.read()
    tree, mutants = collect_mutants(source, module_name)
    tests = tests or tests_for(relpath)
    print(f'== {relpath}: {len(mutants)} mutants, tests: {" ".join(tests)}',
          flush=True)
    start = time.time()
    base, code = run_child(None, module_name, tests, timeout * 10,
                           osp.join(log_dir, 'baseline.log'))
    base_s = time.time() - start
    if base != 'survived':
        raise SystemExit(f'{relpath}: its tests fail unmutated (exit {code}),'
                         f' see {log_dir}/baseline.log')
    limit = max(timeout, 4 * base_s + 20)
    print(f'   unmutated tests pass in {base_s:.1f} s; timeout {limit:.0f} s',
          flush=True)
    results = []
    for i, m in enumerate(mutants):
        if only and not any(s in m.key for s in only):
            continue
        try:
            patch = apply_mutant(tree, m, path)
        except (LookupError, SyntaxError, ValueError) as exc:
            status = 'unsupported'
            print(f'   [{i}] unsupported {m.key}: {exc!r}')
        else:
            status, _ = run_child(patch, module_name, tests, limit,
                                  osp.join(log_dir, f'{i}.log'))
        results.append(dict(line=m.line, key=m.key, status=status))
        if status != 'killed' or os.environ.get('VERBOSE'):
            print(f'   [{i}] line {m.line} {status}: {m.key}', flush=True)
    return dict(file=relpath, tests=tests, seconds=time.time() - start,
                date=datetime.datetime.now(datetime.timezone.utc).strftime(
                    '%Y-%m-%d %H:%M UTC'),
                machine=f'{platform.machine()}, {os.cpu_count()} CPUs '
                '(shared, loaded)',
                results=results)


def classify(record, equivalents):
    """Counts of one file's record; survivors listed as equivalent do not
    count. Returns ``(stats, survivors, stale equivalent keys)``."""
    known = equivalents.get(record['file'], {})
    n = dict(killed=0, timeout=0, survived=0, equivalent=0, unsupported=0)
    survivors = []
    for r in record['results']:
        status = r['status']
        if status == 'survived' and r['key'] in known:
            status = 'equivalent'
        elif status == 'survived':
            survivors.append(r)
        n[status] += 1
    seen = {r['key'] for r in record['results'] if r['status'] == 'survived'}
    stale = [k for k in known if k not in seen]
    killed = n['killed'] + n['timeout']
    mutants = len(record['results']) - n['unsupported']
    live = mutants - n['equivalent']
    score = 100.0 * killed / live if live else 100.0
    return (mutants, killed, n['equivalent'], n['survived'], score), \
        survivors, stale


TABLE_START = '<!-- mutation-table-start -->'
TABLE_END = '<!-- mutation-table-end -->'
SURV_START = '<!-- mutation-survivors-start -->'
SURV_END = '<!-- mutation-survivors-end -->'
EQ_START = '<!-- mutation-equivalents-start -->'
EQ_END = '<!-- mutation-equivalents-end -->'
HEADER = ('| file | mutants | killed | equivalent | survived | score | '
          'tests | date | machine |\n'
          '|---|---|---|---|---|---|---|---|---|\n')


def _section(text, start, end):
    m = re.search(re.escape(start) + r'\n(.*?)' + re.escape(end), text, re.S)
    return m.group(1) if m else ''


def _set_section(text, start, end, body):
    pattern = re.escape(start) + r'\n.*?' + re.escape(end)
    return re.sub(pattern, lambda _: f'{start}\n{body}{end}', text, flags=re.S)


def write_doc(records, equivalents):
    """Merge per-file rows and survivor lists into docs/testing.md."""
    with open(DOC) as f:
        text = f.read()
    table = {}
    for line in _section(text, TABLE_START, TABLE_END).splitlines():
        if line.startswith('| `'):
            table[line.split('`')[1]] = line
    old_surv = {}
    current = None
    for line in _section(text, SURV_START, SURV_END).splitlines():
        if line.startswith('- `') and line.endswith('`:'):
            current = line.split('`')[1]
            old_surv[current] = []
        elif current and line.startswith('  - '):
            old_surv[current].append(line)
    for record in records:
        relpath = record['file']
        (mutants, killed, eq, surv, score), survivors, _ = classify(
            record, equivalents)
        tests = ', '.join(f'`{t}`' for t in record['tests'])
        table[relpath] = (
            f'| `{relpath}` | {mutants} | {killed} | {eq} | {surv} | '
            f'{score:.1f} % | {tests} | {record["date"]} '
            f'({record["seconds"] / 60:.0f} min) | {record["machine"]} |')
        old_surv[relpath] = [f'  - line {r["line"]}: `` {r["key"]} ``'
                             for r in survivors]
    body = HEADER + ''.join(table[k] + '\n' for k in sorted(table))
    text = _set_section(text, TABLE_START, TABLE_END, body)
    surv_body = ''
    for relpath in sorted(old_surv):
        if old_surv[relpath]:
            surv_body += f'- `{relpath}`:\n' + ''.join(
                line + '\n' for line in old_surv[relpath])
    text = _set_section(text, SURV_START, SURV_END, surv_body or 'None.\n')
    eq_body = ''
    for relpath, keys in sorted(equivalents.items()):
        eq_body += f'- `{relpath}`:\n' + ''.join(
            f'  - `` {k} ``: {reason}\n' for k, reason in keys.items())
    text = _set_section(text, EQ_START, EQ_END, eq_body or 'None.\n')
    with open(DOC, 'w') as f:
        f.write(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--files', nargs='+', default=sorted(TESTS),
                        help='source files, relative to the repository root')
    parser.add_argument('--timeout', type=float, default=60,
                        help='least per-mutant time limit in seconds '
                        '(the limit is max(this, 4 x unmutated run + 20 s))')
    parser.add_argument('--only', nargs='+',
                        help='run only mutants whose key holds one of these '
                        'and update them in the file\'s saved results')
    parser.add_argument('--tests', nargs='+',
                        help='run these tests (pytest ids) instead of the '
                        'file\'s own, e.g. to see which mutants one new test '
                        'kills; nothing is saved')
    parser.add_argument('--doc-only', action='store_true',
                        help='rewrite docs/testing.md from the saved results '
                        'of --files (after editing the equivalents list)')
    parser.add_argument('--no-doc', action='store_true',
                        help='do not write docs/testing.md')
    parser.add_argument('--log-dir', default=osp.join(ROOT, 'work_dirs',
                                                      'mutation'))
    args = parser.parse_args()
    for relpath in args.files:
        if relpath not in TESTS:
            parser.error(f'--files: {relpath} has no entry in TESTS of '
                         f'{__file__}; add it with its own test files')
    os.chdir(ROOT)
    sys.path.insert(0, ROOT)
    if not args.doc_only:
        os.environ.setdefault('OMP_NUM_THREADS', '1')
        import torch
        torch.set_num_threads(1)
        import pytest  # noqa: F401
        from hypothesis import Phase, settings

        # a failing example is enough to kill a mutant: no shrinking, and
        # no example database (mutants would replay each other's failures)
        settings.register_profile(
            'mutation', database=None, print_blob=False,
            phases=[Phase.explicit, Phase.generate])
        settings.load_profile('mutation')

        import mmdidb.models  # noqa: F401  (imported once, children fork)
    equivalents = read_equivalents()
    records = []
    for relpath in args.files:
        log_dir = osp.join(args.log_dir, relpath.replace('/', '_'))
        saved = osp.join(log_dir, 'results.json')
        if args.doc_only:
            with open(saved) as f:
                record = json.load(f)
        else:
            os.makedirs(log_dir, exist_ok=True)
            record = run_file(relpath, args.timeout, log_dir, args.only,
                              args.tests)
            if args.tests:
                pass  # a what-if run: keep the saved results as they are
            elif args.only and osp.exists(saved):
                # re-ran a few mutants (after adding a test): update them
                with open(saved) as f:
                    full = json.load(f)
                fresh = {r['key']: r for r in record['results']}
                full['results'] = [fresh.pop(r['key'], r)
                                   for r in full['results']]
                full['results'] += list(fresh.values())
                full['tests'] = record['tests']
                full['date'] = record['date'] + ' (updated with --only)'
                record = full
            if not args.tests and (not args.only or osp.exists(saved)):
                with open(saved, 'w') as f:
                    json.dump(record, f, indent=1)
        stats, _, stale = classify(record, equivalents)
        print(f'   {relpath}: mutants {stats[0]}, killed {stats[1]}, '
              f'equivalent {stats[2]}, survived {stats[3]}, score '
              f'{stats[4]:.1f} % ({record["seconds"]:.0f} s)', flush=True)
        for key in stale:
            print(f'   equivalent entry that is not a survivor: {key}')
        if not args.tests and (not args.only or osp.exists(saved)):
            records.append(record)
    if records and not args.no_doc:
        write_doc(records, equivalents)


if __name__ == '__main__':
    main()
