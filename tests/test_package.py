"""The package as a performer gets it: the wheel, installed by plain pip into a fresh virtual environment,
played from an empty folder with no C compiler on PATH; and its dependencies on other platforms."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
import zipfile
from email.parser import Parser
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import REPO

from tuibend.native.variants import variants_for

# (sys_platform, platform_system, platform_machine) -> pip's platform tag for a wheel of Python 3.11
PLATFORMS = {
    ("linux", "Linux", "x86_64"): "manylinux_2_27_x86_64",
    ("linux", "Linux", "aarch64"): "manylinux2014_aarch64",
    ("darwin", "Darwin", "arm64"): "macosx_14_0_arm64",
    ("darwin", "Darwin", "x86_64"): "macosx_12_0_x86_64",
    ("win32", "Windows", "AMD64"): "win_amd64",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel as `pip wheel .` builds it (the kernel compiled for this platform's CPU levels)."""
    folder = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(folder), str(REPO)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    return next(folder.glob("tuibend-*.whl"))


def requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        return Parser().parsestr(archive.read(metadata).decode()).get_all("Requires-Dist")


def test_the_wheel_carries_what_it_plays(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    data = "tuibend/data/"
    for needed in ("tuibend/native/block.c", "tuibend/tui/app.tcss", f"{data}audio/demo-voice.flac",
                   f"{data}models/crepe-tiny.npz", f"{data}scenes/breath.toml"):
        assert needed in names, needed
    for model in ("choir", "flute"):
        assert {f"{data}models/{model}/{file}" for file in ("config.json", "weights.npz", "statistics.npz")} <= names
    assert len([name for name in names if name.startswith(f"{data}scenes/") and name.endswith(".toml")]) == 8
    for variant in variants_for(platform.machine()):
        assert any(re.fullmatch(rf"tuibend/native/_block_{variant}\..*(so|pyd)", name) for name in names), variant
    assert not [name for name in names if "ckpt-" in name or name.endswith("units.npz")]
    assert wheel.stat().st_size < 40e6


def test_every_platform_gets_an_installable_tensorflow_and_no_torch(wheel):
    """The requirements as pip reads them on macOS (arm64, x86), Linux (x86, aarch64) and Windows: one
    TensorFlow whose name has a wheel there for Python 3.11 (asked of the package index), never torch."""
    from packaging.requirements import Requirement

    needs = [Requirement(text) for text in requirements(wheel)]
    for (sys_platform, system, machine), tag in PLATFORMS.items():
        environment = {"sys_platform": sys_platform, "platform_system": system, "platform_machine": machine,
                       "python_version": "3.11", "extra": ""}
        chosen = [need for need in needs if need.marker is None or need.marker.evaluate(environment)]
        names = {need.name for need in chosen}
        assert not names & {"torch", "torchcrepe"}, (tag, names)
        tensorflow = [need for need in chosen if need.name in ("tensorflow", "tensorflow-cpu")]
        assert len(tensorflow) == 1, (tag, names)
        listing = subprocess.run([sys.executable, "-m", "pip", "index", "versions", tensorflow[0].name, "--platform",
                                  tag, "--python-version", "3.11", "--only-binary=:all:"],
                                 capture_output=True, text=True, timeout=120)
        found = re.search(rf"{tensorflow[0].name} \(([^)]+)\)", listing.stdout)
        assert found and found.group(1) in tensorflow[0].specifier, (tag, listing.stdout, listing.stderr[-500:])


def test_the_installed_wheel_plays_from_an_empty_folder_without_a_compiler(wheel, tmp_path):
    """Plain pip into a fresh environment; then, from an empty folder with only that environment on PATH
    (no cc, gcc or clang) and empty user folders: --version, models, render, play --headless on the
    native kernel (the package's own build), and the interface itself in tmux (with no device: the JACK
    server of other tests may be running)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                             capture_output=True, text=True, timeout=1800)
    assert install.returncode == 0, install.stderr[-2000:]
    assert subprocess.run([str(venv / "bin" / "python"), "-c", "import torch"], capture_output=True).returncode != 0
    stage = tmp_path / "stage"
    stage.mkdir()
    seconds = np.arange(32000) / 16000
    soundfile.write(stage / "in.wav", 0.3 * np.sin(2 * np.pi * 220 * seconds) * np.minimum(1, seconds * 4), 16000)
    env = {"PATH": str(venv / "bin"), "HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "TERM": "xterm-256color", "LANG": "C.UTF-8"}

    def tuibend(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["tuibend", *args], cwd=stage, env=env, capture_output=True, text=True, timeout=600)

    for compiler in ("cc", "gcc", "clang"):
        assert subprocess.run(["/bin/sh", "-c", f"command -v {compiler}"], env=env).returncode != 0
    version = tuibend("--version")
    assert version.returncode == 0 and version.stdout.startswith("tuibend "), version.stderr
    models = tuibend("models")
    assert models.returncode == 0 and "choir" in models.stdout and "flute" in models.stdout, models.stderr
    render = tuibend("render", "in.wav", "-o", "out.wav")
    assert render.returncode == 0, render.stderr
    audio, rate = soundfile.read(stage / "out.wav")
    assert abs(len(audio) / rate - 2.0) < 0.05 and np.max(np.abs(audio)) > 0.01
    play = tuibend("play", "--headless", "--device", "none", "--duration", "3", "--scene", "breath")
    assert play.returncode == 0, play.stderr
    assert re.search(r"native kernel \((avx512bf16|avx2|portable) build", play.stdout), (play.stdout, play.stderr)
    assert "TensorFlow runs" not in play.stderr
    assert not list((tmp_path / "cache").rglob("block-*.so"))  # nothing was compiled: the package's build plays
    assert sorted(os.listdir(stage)) == ["in.wav", "out.wav"]  # the performance wrote nothing into the folder

    session = f"tuibend-wheel-{int(time.time())}"
    exports = " ".join(f"{key}={value}" for key, value in env.items())
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30",
                    f"cd {stage} && env -i {exports} tuibend play --device none; sleep 30"], check=True)
    try:
        deadline = time.monotonic() + 180
        screen = ""
        while "Chain" not in screen:
            assert time.monotonic() < deadline, screen
            time.sleep(0.5)
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                    text=True).stdout
        assert "choir" in screen and "Traceback" not in screen
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        time.sleep(2.0)
        screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout
        assert "Chain" not in screen and "Traceback" not in screen, screen
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
