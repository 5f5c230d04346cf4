"""The live engine: sources, the model thread, safety, the device bridge, takes and the events log; the
performance served on the control socket, and the interface's view of one attached from elsewhere.

Imported lazily: an attached interface and ``tuibend status`` need the socket's side alone, never
TensorFlow."""

from tuibend.lazy import lazy_exports

_EXPORTS = {"BLOCK_SIZES": "engine", "Engine": "engine", "EngineSettings": "engine", "Telemetry": "telemetry",
            "EngineError": "errors", "FilePlayer": "sources", "LiveAnalysis": "sources"}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
