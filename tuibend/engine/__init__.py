"""The live engine: sources, the model thread, safety, the device bridge, takes and the events log."""

from tuibend.engine.engine import BLOCK_SIZES, Engine, EngineSettings, Telemetry
from tuibend.engine.errors import EngineError
from tuibend.engine.sources import FilePlayer, LiveAnalysis

__all__ = ["BLOCK_SIZES", "Engine", "EngineError", "EngineSettings", "FilePlayer", "LiveAnalysis", "Telemetry"]
