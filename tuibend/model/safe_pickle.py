"""Reads magenta-ddsp's ``dataset_statistics.pkl`` without letting it run code.

A pickle names callables that ``pickle.load`` would import and call. This unpickler
admits only the numpy constructors for scalars and arrays and maps the few ddsp and
scikit-learn classes the file names onto inert attribute holders; anything else is
refused with a message that names it.
"""

from __future__ import annotations

import io
import pickle

import numpy as np

from tuibend.errors import TuibendError


class UnsafePickleError(TuibendError, ValueError):
    """The pickle names something outside the allowed set."""


class PickledObject:
    """An inert stand-in: receives a pickled object's attributes and does nothing else."""

    def __setstate__(self, state) -> None:
        if isinstance(state, dict):
            self.__dict__.update(state)


def _ignored_random_state(*_args) -> PickledObject:
    """A pickled numpy RandomState is not needed: keep nothing of it."""
    return PickledObject()


def _numpy_scalar(dtype, data=None):
    """Rebuilds a numpy scalar from its dtype and raw bytes (what numpy's own reducer does)."""
    if dtype.hasobject:
        raise UnsafePickleError("object-dtype numpy scalars are refused")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


MAX_ARRAY_BYTES = 64 * 1024 * 1024  # ddsp's statistics are kilobytes; a 68-byte pickle once asked for 72.8 TiB


def _check_size(shape, itemsize: int) -> None:
    count = 1
    for length in shape:
        if not isinstance(length, int) or length < 0:
            raise UnsafePickleError(f"array shape {shape!r} is not a shape")
        count *= length
    if count * itemsize > MAX_ARRAY_BYTES:
        raise UnsafePickleError(f"an array of shape {tuple(shape)} ({count * itemsize} bytes) is refused "
                                f"(at most {MAX_ARRAY_BYTES})")


class _BoundedArray(np.ndarray):
    """An array whose pickled state is checked (size, data length) before numpy allocates it."""

    def __setstate__(self, state) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise UnsafePickleError("an array's pickled state is not numpy's")
        _, shape, dtype, _, data = state
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise UnsafePickleError("object-dtype arrays are refused")
        _check_size(tuple(shape), dtype.itemsize)
        if not isinstance(data, (bytes, bytearray)) or len(data) != int(np.prod(shape)) * dtype.itemsize:
            raise UnsafePickleError(f"an array of shape {tuple(shape)} holds {len(data)} bytes of data")
        super().__setstate__(state)


def _numpy_reconstruct(subtype, shape, dtype_code):
    """An empty array the pickle's BUILD step then fills (checked first); object dtypes are never built."""
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"array subtype {subtype!r} is refused")
    _check_size(tuple(shape), 1)
    return np.ndarray.__new__(_BoundedArray, shape, dtype_code)


def _plain_dtype(*args, **kwargs) -> np.dtype:
    """numpy dtypes, except object ones (their items would be arbitrary pickled objects)."""
    dtype = np.dtype(*args, **kwargs)
    if dtype.hasobject:
        raise UnsafePickleError("object-dtype arrays are refused")
    return dtype


_ALLOWED = {
    ("numpy", "dtype"): _plain_dtype,
    ("numpy", "ndarray"): np.ndarray,
}
for _core in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_core, "scalar")] = _numpy_scalar
    _ALLOWED[(_core, "_reconstruct")] = _numpy_reconstruct
for _module in ("ddsp.training.postprocessing", "sklearn.preprocessing._data", "sklearn.preprocessing.data"):
    _ALLOWED[(_module, "QuantileTransformer")] = PickledObject
_ALLOWED[("numpy.random._pickle", "__randomstate_ctor")] = _ignored_random_state


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refused to load {module}.{name}: only numpy arrays and ddsp's "
                                    "QuantileTransformer may appear in dataset statistics") from None


def restricted_loads(data: bytes):
    """Unpickles ``data`` admitting only numpy values and ddsp's statistics classes."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError, IndexError) as error:
        raise UnsafePickleError(f"not a readable statistics pickle ({error})") from None
