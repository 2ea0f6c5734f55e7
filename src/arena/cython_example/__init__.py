"""Build ``consumer.pyx``, a module that cimports ``arena._core``, into a folder.

The pattern of numpy.random's Cython examples: a third-party package compiles against the
``.pxd`` files arena ships and allocates from C.

>>> import tempfile, arena, arena.cython_example as ex    # doctest: +SKIP
>>> consumer = ex.build(tempfile.mkdtemp())               # doctest: +SKIP
>>> a = arena.Arena(1 << 20); consumer.fill_range(a, 4)   # doctest: +SKIP
0
"""
from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys

_SETUP = """
import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
setup(ext_modules=cythonize(
    [Extension("consumer", ["consumer.pyx"], include_dirs=[np.get_include()],
               extra_compile_args=["-O3"])],
    compiler_directives={{"language_level": 3, "boundscheck": False, "wraparound": False}},
    include_path=[{include!r}]))
"""


def build(folder: str | os.PathLike):
    """Compile ``consumer.pyx`` in ``folder`` and import it. Needs Cython and a C compiler;
    raises RuntimeError with the compiler's output if the build fails."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(pathlib.Path(__file__).with_name("consumer.pyx"), folder / "consumer.pyx")
    # The folder that holds the arena package, so that `cimport arena._core` finds the
    # shipped .pxd files wherever arena is installed.
    include = str(pathlib.Path(__file__).resolve().parent.parent.parent)
    (folder / "setup.py").write_text(_SETUP.format(include=include))
    out = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=folder,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"building the cimport example failed:\n{out.stdout}\n{out.stderr}")
    built = next(folder.glob("consumer*.so"))
    spec = importlib.util.spec_from_file_location("consumer", built)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
