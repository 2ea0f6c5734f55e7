"""Every example in README.md and in the package's docstrings runs and prints what it says."""
import doctest
import importlib
import pathlib

import pytest

import arena
import arena._core
import arena._format
import arena._options
import arena._system

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _optional(name):
    """The module, or a skipped parameter where its optional dependency is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        return pytest.param(None, id=name, marks=pytest.mark.skip(reason=str(exc)))


@pytest.mark.parametrize("module", [arena, arena._core, arena._format, arena._options,
                                    arena._system, _optional("arena.dask")],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=FLAGS, raise_on_error=False)
    assert result.failed == 0
    if module is arena._core:
        assert result.attempted > 40  # the examples really ran


def test_readme_examples():
    result = doctest.testfile(str(README), module_relative=False, optionflags=FLAGS)
    assert result.failed == 0 and result.attempted > 20
