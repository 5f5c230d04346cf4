"""Builds the native block kernel with the package: one library per CPU level, the fastest chosen at run
time (tuibend/native/variants.py), so a performer's machine needs no compiler. The kernel is loaded with
ctypes; it is built as an extension module only so that each platform's wheel carries its own build.
A build that fails (a compiler without a flag) is left out: the other builds, or TensorFlow, play."""

import platform
import runpy
import sys
from pathlib import Path

from setuptools import Extension, setup

variants = runpy.run_path(str(Path(__file__).parent / "tuibend" / "native" / "variants.py"))


def kernel(name: str) -> Extension:
    flags = [*variants["COMMON_FLAGS"], *variants["VARIANTS"][name][2]]
    return Extension(f"tuibend.native._block_{name}", ["tuibend/native/block.c"],
                     extra_compile_args=flags if sys.platform != "win32" else [],
                     define_macros=[("TB_INIT_NAME", f"PyInit__block_{name}"),
                                    variants["digest_macro"](Path("tuibend/native/block.c"))],
                     libraries=["m"] if sys.platform != "win32" else [], optional=True)


setup(ext_modules=[kernel(name) for name in variants["variants_for"](platform.machine())])
