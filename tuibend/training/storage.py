"""Files of a dataset wherever TensorFlow's file system reaches: a local folder, or a bucket (``gs://``,
``s3://`` with TensorFlow I/O, ``hdfs://``) that several training machines read.

Paths are strings joined with ``/`` (``pathlib`` would fold ``gs://`` into ``gs:/``). A file is written
whole under a temporary name and renamed into place, so an interrupted write never leaves half a shard.
"""

from __future__ import annotations

import io
import os
import uuid

import numpy as np


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def join(folder: str | os.PathLike, name: str) -> str:
    return f"{os.fspath(folder).rstrip('/')}/{name}"


def exists(path: str) -> bool:
    return _gfile().exists(path)


def make_folder(path: str) -> None:
    _gfile().makedirs(path)


def read_bytes(path: str) -> bytes:
    import tensorflow as tf

    try:
        with _gfile().GFile(path, "rb") as file:
            return file.read()
    except tf.errors.NotFoundError:
        raise FileNotFoundError(path) from None


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def write_bytes(path: str, data: bytes) -> None:
    """``data`` into ``path`` all at once: a temporary file beside it, renamed over it."""
    gfile = _gfile()
    temporary = f"{path}.{uuid.uuid4().hex[:8]}.part"
    try:
        with gfile.GFile(temporary, "wb") as file:
            file.write(data)
        gfile.rename(temporary, path, overwrite=True)
    except BaseException:
        if gfile.exists(temporary):
            gfile.remove(temporary)
        raise


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def read_arrays(path: str) -> dict[str, np.ndarray]:
    """An ``.npz`` file's arrays (never pickles)."""
    with np.load(io.BytesIO(read_bytes(path)), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def write_arrays(path: str, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes(path, buffer.getvalue())
