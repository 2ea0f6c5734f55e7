"""Build: cythonize src/arena/*.pyx with the compiler directives kept in this one place.

ARENA_DEBUG=1 builds with bounds checks, wraparound and -O0 -g (and ARENA_SANITIZE=1 adds
-fsanitize=address,undefined) for tracking down memory errors.
"""
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("ARENA_DEBUG", "") not in ("", "0")
SANITIZE = os.environ.get("ARENA_SANITIZE", "") not in ("", "0")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "binding": True,
    "embedsignature": True,
    "auto_pickle": False,  # an arena, its marks and frames are tied to one mapping
}

compile_args = ["-O0", "-g"] if DEBUG else ["-O3"]
link_args = []
if SANITIZE:
    compile_args += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    link_args += ["-fsanitize=address,undefined"]

extensions = [
    Extension(
        f"arena.{name}",
        [f"src/arena/{name}.pyx"],
        include_dirs=[np.get_include()],
        # C lines in tracebacks: Cython caches traceback code objects by Python line alone,
        # which the .pxi files share, so without them a frame can show another function.
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION"),
                       ("NPY_TARGET_VERSION", "NPY_2_0_API_VERSION"),  # numpy>=2 anyway
                       ("CYTHON_CLINE_IN_TRACEBACK", "1")],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    for name in ("_core",)
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives, include_path=["src"]))
