"""pytest setup of the mmdidb.ops tests.

``ops_helpers`` sits beside the tests; its folder is put on ``sys.path`` so
the import works under any pytest import mode.
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
