"""The examples written as ``>>>`` in the docstrings of ``core`` run and give what they show."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import visual_curation.core as core


def test_docstring_examples_of_core_hold():
    attempted, failures = 0, []
    for info in pkgutil.walk_packages(core.__path__, "visual_curation.core."):
        mod = importlib.import_module(info.name)
        r = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                            report=False)
        attempted += r.attempted
        if r.failed:
            failures.append(f"{info.name}: {r.failed} of {r.attempted}")
    assert attempted > 0
    assert not failures, failures
