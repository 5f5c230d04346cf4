"""The engine's one error type: a message a performer can act on."""

from tuibend.errors import TuibendError


class EngineError(TuibendError, RuntimeError):
    """A device, rate, block size or model the engine cannot run with, and what to do instead."""
