"""Tiny datasets in each dataset's real on-disk layout, made by the tests.

Every module of this package defines ``MAKERS``: dataset ``type`` (as
written in configs) -> ``maker(tmp_path) -> dict`` of dataset fields to
override (paths) so the config reads the tiny copy. Add a module per dataset
family; :data:`MAKERS` collects them all.
"""
import importlib
import pkgutil

MAKERS = {}
for _info in pkgutil.iter_modules(__path__):
    _module = importlib.import_module(f'{__name__}.{_info.name}')
    MAKERS.update(getattr(_module, 'MAKERS', {}))
