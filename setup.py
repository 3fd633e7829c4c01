"""The one compiled part of edgelr: its training passes (edgelr/_kernels.c), built where a C compiler is.

Everything else is in pyproject.toml. ``optional=True``: without a compiler the install
still succeeds and training uses its numpy/torch passes (edgelr.kernels says which).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("edgelr._kernels", ["edgelr/_kernels.c"], optional=True,
                             extra_compile_args=["-O3"])])
