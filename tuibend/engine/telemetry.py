"""What the engine reports of itself after each block, for meters, the stats file and attached interfaces."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Telemetry:
    """One snapshot of the engine for meters and the stats file (replaced whole after each block)."""

    time_s: float = 0.0
    input_db: float = -120.0
    output_db: float = -120.0
    f0_hz: float = 0.0
    confidence: float = 0.0
    loudness_db: float = -120.0
    load: float = 0.0  # time per block over the block's duration, mean of the last second
    load_peak: float = 0.0  # the worst block of the last second
    underruns: int = 0
    overruns: int = 0
    xruns: int = 0  # periods the audio system itself reported late (JACK: the whole graph)
    guard_mutes: int = 0
    latency_ms: float = 0.0  # the engine's own added delay, input onset to output onset
    pitch_lag_ms: float = 0.0
    position_s: float = 0.0
    duration_s: float = 0.0
    playing: bool = False
    bypass: bool = False
    gain_db: float = 0.0
    scene: str = ""
    preparing: bool = False
    take_s: float | None = None
    blocks: int = 0
    gate_open: bool = False  # the noise gate: the player is playing
    gate_threshold_db: float = 0.0  # where it opens, on the loudness scale
    floor_db: float | None = None  # the input's measured noise floor (None: the gate is off or set by hand)
    level_db: float = 0.0  # the level match's gain
    error: str | None = None
    notice: str | None = None  # the last thing the performer should know that did not stop the engine
