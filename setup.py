"""Install mmdidb: ``pip install -e .`` (extras: tests, cuda, benchmark,
mutation).

torch is not pinned here on purpose: install the build that fits the machine
first (``pip install torch==2.13.0`` takes the local CPU build on the
project's machines; see README), so pip does not pull a multi-GB CUDA build.
"""
import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_requirements(name):
    with open(osp.join(HERE, 'requirements', name)) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line]


def read_version():
    scope = {}
    with open(osp.join(HERE, 'mmdidb', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='mmdidb',
    version=read_version(),
    description='DIDB-ViT, a fully binary Vision Transformer, for OpenMMLab '
    '(mmpretrain and mmsegmentation)',
    long_description=open(osp.join(HERE, 'README.md')).read()
    if osp.exists(osp.join(HERE, 'README.md')) else '',
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    package_data={'mmdidb.ops': ['csrc/*.cu', 'csrc/*.cuh', 'csrc/*.c',
                                  'csrc/*.h']},
    include_package_data=True,
    install_requires=['torch>=2.1'] + read_requirements('runtime.txt'),
    extras_require={
        'tests': read_requirements('tests.txt'),
        'cuda': read_requirements('cuda.txt'),
        'benchmark': read_requirements('benchmark.txt'),
        'mutation': read_requirements('mutation.txt'),
    },
    zip_safe=False,
)
