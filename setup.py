"""The one compiled part of edgelr: its training passes (edgelr/_kernels.c), built where a C compiler is.

Everything else is in pyproject.toml. ``optional=True``: without a compiler the install
still succeeds and training uses its numpy/torch passes (edgelr.kernels says which).
``-fno-trapping-math``: no Python program turns floating-point traps on, and without the
flag GCC will not turn the loss's selects into vector code. It changes no result.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("edgelr._kernels", ["edgelr/_kernels.c"], optional=True,
                             extra_compile_args=["-O3", "-fno-trapping-math"])])
