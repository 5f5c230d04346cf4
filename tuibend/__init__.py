"""tuibend: a terminal instrument that plays a DDSP timbre model and bends its network.

Public API (see the README): :func:`load_model`, :func:`read_model`, :class:`TimbreModel`, :mod:`tuibend.dsp`.
TensorFlow loads on first use, so ``tuibend --help`` stays quick.
"""

from __future__ import annotations

import os

# TensorFlow's C++ start-up notices would draw over the terminal interface: set before any import of it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.2.0"

_LAZY = {
    "load_model": ("tuibend.model.store", "load_model"),
    "read_model": ("tuibend.model.store", "read_model"),
    "save_model": ("tuibend.model.store", "save_timbre_model"),
    "TimbreModel": ("tuibend.model.timbre", "TimbreModel"),
    "import_ddsp": ("tuibend.model.ddsp_import", "import_ddsp"),
    "ModelFormatError": ("tuibend.model.config", "ModelFormatError"),
    "analyze": ("tuibend.pitch.files", "analyze"),
    "Features": ("tuibend.pitch.analysis", "Features"),
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'tuibend' has no attribute {name!r}")
