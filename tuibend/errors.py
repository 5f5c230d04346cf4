"""The root of every fault a user can cause or meet: a file, a folder, a device, a setting.

The command line and the interface catch :class:`TuibendError` and print its message as one line;
any other exception is a bug and keeps its traceback (written to a log file that the one-line
message names). Each module's own error derives from it, with the built-in kind it has always had
(a ``ValueError`` for bad input), so existing handlers keep working.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path


class TuibendError(Exception):
    """A fault with a message for the performer: what, where, and what is allowed."""


class InputError(TuibendError, ValueError):
    """A value given on the command line or in a file that cannot be used."""


def keep_traceback(error: BaseException) -> Path | None:
    """A bug's traceback, kept in the user's log folder for a report; the file, or None if none can be written."""
    from tuibend import __version__
    from tuibend.places import user_log

    path = user_log(time.strftime("crash-%Y%m%d-%H%M%S.txt"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"tuibend {__version__}, {' '.join(sys.argv)}\n\n" + "".join(traceback.format_exception(error)))
    except OSError:
        return None
    return path


def describe(error: BaseException) -> str:
    """One line for any failure: a TuibendError's message as it is; a bug's kind and message, and where its
    traceback was kept."""
    if isinstance(error, TuibendError):
        return str(error)
    log = keep_traceback(error)
    return f"{type(error).__name__}: {error}" + (f" (a bug: traceback in {log})" if log else " (a bug)")
