"""Where tuibend finds what it ships and keeps what a user makes.

What the package carries (the bundled models, scenes, demo audio and CREPE tiny weights) is found
through ``importlib.resources``, so an installed tuibend plays from any folder. What a user makes
(imported and trained models, saved scenes, takes, key and MIDI maps, caches) lives in the
platform's own places (platformdirs: XDG folders on Linux, ``~/Library`` on macOS, ``%LOCALAPPDATA%``
on Windows). A model or scene is asked for by path or by name; a user's one shadows a bundled one of
the same name, and the bundled ones are always there.
"""

from __future__ import annotations

import os
import stat
import tempfile
from importlib.resources import files
from pathlib import Path

import platformdirs

from tuibend.errors import TuibendError

APP = "tuibend"
DEFAULT_MODEL = "choir"
DEMO_INPUT = "demo-voice.flac"


class PlaceError(TuibendError, ValueError):
    """A model, scene or folder asked for that is not there."""


def bundled(*parts: str) -> Path:
    """A path inside the package's own data (read-only: never write here)."""
    return Path(str(files("tuibend").joinpath("data", *parts)))


def user_data(*parts: str) -> Path:
    return platformdirs.user_data_path(APP, appauthor=False).joinpath(*parts)


def user_config(*parts: str) -> Path:
    return platformdirs.user_config_path(APP, appauthor=False).joinpath(*parts)


def user_cache(*parts: str) -> Path:
    return platformdirs.user_cache_path(APP, appauthor=False).joinpath(*parts)


def user_log(*parts: str) -> Path:
    """Where bugs' tracebacks are kept (``~/.local/state/tuibend/log`` on Linux)."""
    return platformdirs.user_log_path(APP, appauthor=False).joinpath(*parts)


def user_models() -> Path:
    return user_data("models")


def user_scenes() -> Path:
    """Where the interface saves scenes (and where a user's own scenes are found)."""
    return user_data("scenes")


def takes() -> Path:
    return user_data("takes")


def demo_input() -> Path:
    return bundled("audio", DEMO_INPUT)


def is_bundled(path: Path) -> bool:
    """Whether ``path`` lies inside the package's data (a cache for it goes to the user's cache)."""
    return Path(path).resolve().is_relative_to(bundled().resolve())


def _is_name(spec: str) -> bool:
    return bool(spec) and "/" not in spec and "\\" not in spec and not spec.startswith(".")


def model_folders() -> dict[str, Path]:
    """Every model by name: the bundled ones, then the user's (which shadow a bundled one)."""
    found: dict[str, Path] = {}
    for root in (bundled("models"), user_models()):
        if root.is_dir():
            found.update({folder.name: folder for folder in sorted(root.iterdir())
                          if (folder / "config.json").is_file()})
    return found


def find_model(spec: str | Path) -> Path:
    """A model folder from a path or a name (``choir``, ``flute``, or one the user imported or trained)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    folders = model_folders()
    if _is_name(str(spec)) and str(spec) in folders:
        return folders[str(spec)]
    if path.exists():
        raise PlaceError(f"{spec}: not a model folder")
    raise PlaceError(f"{spec}: no such model folder or model name (models: {', '.join(folders) or 'none'})")


def scene_files(folder: Path | None = None) -> list[Path]:
    """The scene files to recall, in name order: ``folder``'s alone when given (it must exist), else the
    bundled ones and the user's (a user's scene shadows a bundled one of the same name)."""
    if folder is not None:
        if not Path(folder).is_dir():
            raise PlaceError(f"{folder}: no such scenes folder")
        return sorted(Path(folder).glob("*.toml"))
    found: dict[str, Path] = {}
    for root in (bundled("scenes"), user_scenes()):
        if root.is_dir():
            found.update({path.stem: path for path in root.glob("*.toml")})
    return [found[name] for name in sorted(found)]


def find_scene(spec: str | Path, folder: Path | None = None) -> Path:
    """A scene file from a path or a name (``breath``, ``far-chain``, or one the user saved)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if _is_name(str(spec)):
        for candidate in scene_files(folder):
            if candidate.stem == str(spec):
                return candidate
    names = ", ".join(candidate.stem for candidate in scene_files(folder))
    raise PlaceError(f"{spec}: no such scene file or scene name (scenes: {names or 'none'})")


def crepe_weights(capacity: str) -> Path:
    """CREPE weights: tiny ships with the package; others are converted into the user's models folder."""
    name = f"crepe-{capacity}.npz"
    shipped = bundled("models", name)
    return shipped if shipped.is_file() else user_models() / name


def runtime() -> Path:
    """The user's own folder for the control socket: ``$XDG_RUNTIME_DIR/tuibend``, else a 0700 folder of
    theirs in the temporary directory. One that another user owns, or that others may enter, is refused:
    whoever reaches the socket can steer the performance."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    folder = Path(base) / APP if base else Path(tempfile.gettempdir()) / f"{APP}-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, parents=bool(base), exist_ok=True)
        status = folder.lstat()
    except OSError as error:
        raise PlaceError(f"{folder}: cannot make the control folder ({error.strerror or error})") from None
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise PlaceError(f"{folder}: the control folder must be a folder of yours that only you may enter "
                         f"(owner {status.st_uid}, mode {stat.S_IMODE(status.st_mode):o})")
    return folder


def folders() -> dict[str, Path]:
    """The user's folders by what they hold (``tuibend paths``)."""
    return {"models": user_models(), "scenes": user_scenes(), "takes": takes(), "config": user_config(),
            "cache": user_cache(), "logs": user_log(), "bundled": bundled()}
