"""Build the Cython core (``src_c/*.pyx``) into modules inside ``chunkstore``.

``CHUNKSTORE_PUREPYTHON=1`` skips compiling: the package then runs on its
pure-Python twins (see ``chunkstore/_kernels.py``).
"""

import os

from setuptools import Extension, setup

PURE = os.environ.get("CHUNKSTORE_PUREPYTHON", "") not in ("", "0")

ext_modules = []
if not PURE:
    from Cython.Build import cythonize

    names = ["_hashing", "_block", "_scan", "_tokens"]
    extensions = [
        Extension(
            f"chunkstore.{name}",
            [os.path.join("src_c", f"{name}.pyx")],
            extra_compile_args=["-O3"],
        )
        for name in names
        if os.path.exists(os.path.join("src_c", f"{name}.pyx"))
    ]
    ext_modules = cythonize(
        extensions,
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
        include_path=["src_c"],
    )

setup(ext_modules=ext_modules)
