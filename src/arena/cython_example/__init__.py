"""Build ``consumer.pyx``, a module that cimports ``arena._core``, into a folder.

The pattern of numpy.random's Cython examples: a third-party package compiles against the
``.pxd`` files arena ships and allocates from C.

>>> import tempfile, arena, arena.cython_example as ex    # doctest: +SKIP
>>> consumer = ex.build(tempfile.mkdtemp())               # doctest: +SKIP
>>> a = arena.Arena(1 << 20); consumer.fill_range(a, 4)   # doctest: +SKIP
0

``python -m arena bench`` and the asv suite skip their ``alloc_raw`` cases, rather than
fail, when :func:`missing_toolchain` says why this machine cannot build it.
"""
from __future__ import annotations

import importlib.util
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import sysconfig

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


def missing_toolchain() -> str | None:
    """Why this machine cannot build the consumer (Cython, a C compiler or the Python
    headers missing), or None when :func:`build` can run."""
    if importlib.util.find_spec("Cython") is None:
        return "Cython is not installed"
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    compiler = shlex.split(cc)[0]  # CC may carry flags: "gcc -pthread"
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler} not found)"
    include = sysconfig.get_paths()["include"]
    if not os.path.exists(os.path.join(include, "Python.h")):
        return f"no Python headers ({include}/Python.h missing)"
    return None


def load(folder: str | os.PathLike):
    """Import the consumer that :func:`build` compiled in ``folder``."""
    built = next(pathlib.Path(folder).glob("consumer*.so"))
    spec = importlib.util.spec_from_file_location("consumer", built)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    return load(folder)
