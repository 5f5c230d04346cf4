"""Atomic file writes: a temporary file beside the target, renamed into place once complete."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yields a temporary path to write; on success it replaces ``path``, on failure it vanishes.

    The file gets the permissions a plain ``open`` would give it (mkstemp's are private). A failure
    to write (a full disk, a read-only folder) is an ``OSError`` naming ``path``, not the temporary file.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=suffix or target.suffix,
                                                 dir=target.parent)
    except OSError as error:  # named by the file the user asked for, not the temporary one
        raise OSError(error.errno, f"cannot write {target} ({error.strerror})") from None
    os.close(descriptor)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    try:
        yield Path(temporary)
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise OSError(error.errno, f"cannot write {target} ({error.strerror or error})") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
