"""Pitch and loudness analysis: CREPE and YIN trackers, offline and streaming, and the file cache.

Names load on first use (TensorFlow comes with CREPE).
"""

from __future__ import annotations

_LAZY = {
    "Crepe": "tuibend.pitch.crepe",
    "Features": "tuibend.pitch.analysis",
    "Gate": "tuibend.pitch.analysis",
    "StreamingAnalyzer": "tuibend.pitch.analysis",
    "analyze_audio": "tuibend.pitch.analysis",
    "analyze": "tuibend.pitch.files",
    "make_tracker": "tuibend.pitch.trackers",
    "TRACKERS": "tuibend.pitch.names",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tuibend.pitch' has no attribute {name!r}")
