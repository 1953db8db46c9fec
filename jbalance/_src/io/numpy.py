"""NumPy count matrices: ``.npy`` or ``.npz`` (never unpickled; sizes checked first)."""

import pathlib
import zipfile
from typing import Any

import numpy as np

from jbalance._src.io.common import (
    LabelFormatError,
    LabelSet,
    PathLike,
    _as_count_matrix,
    _check_names,
)

# Deflate cannot expand data by more than ~1032x; a member claiming more is not a real .npz.
_MAX_INFLATE = 1100
_MAX_HEADER = 10_000


def _read_npy(f: Any, available: int, path: PathLike, where: str) -> np.ndarray:
    """One ``.npy`` stream; its header's shape must fit in the ``available`` bytes."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f, max_header_size=_MAX_HEADER)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(f, max_header_size=_MAX_HEADER)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        if dtype.hasobject:
            raise ValueError("object arrays need pickle, which is never used")
        need = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if need > available:
            raise ValueError(f"the header promises {need} bytes of data but the file holds "
                             f"at most {available}")
        data = f.read(need)
        if len(data) != need:
            raise ValueError(f"truncated: {len(data)} of {need} data bytes")
        return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
    except Exception as e:  # noqa: BLE001 - numpy's header parser raises ast/tokenize errors
        raise LabelFormatError(path, where, f"not a readable NumPy array without pickle "
                               f"({e})") from None


def read_numpy(path: PathLike) -> LabelSet:
    r"""Reads a count matrix from ``.npy`` (the matrix) or ``.npz`` (named arrays).

    An ``.npz`` holds ``counts`` (or a single 2-D array under any name) and optionally
    ``class_names`` and ``image_ids`` (as written by `write_label_set` or ``np.savez``).
    Pickled objects are never loaded, and an array header that promises more data than the
    file can hold is refused before anything is allocated.

    Args:
      path: The ``.npy`` or ``.npz`` file.

    Returns:
      A `LabelSet`; names default to ``"0"``, ``"1"``, ...

    Raises:
      FileNotFoundError: If ``path`` does not exist.
      LabelFormatError: If the file is not a NumPy file (or a corrupt ``.npz``), needs pickle,
        has no (unique) 2-D array, or the counts are negative, non-integral or non-finite.

    Examples:
      >>> import numpy as np, tempfile, pathlib
      >>> from jbalance.io import read_numpy
      >>> p = pathlib.Path(tempfile.mkdtemp()) / "counts.npz"
      >>> np.savez(p, counts=np.array([[2, 0], [0, 1]]), class_names=np.array(["a", "b"]))
      >>> ls = read_numpy(p)
      >>> ls.counts.tolist(), ls.class_names
      ([[2, 0], [0, 1]], ['a', 'b'])
    """
    path = pathlib.Path(path)
    with open(path, "rb") as f:
        magic = f.read(6)
        f.seek(0, 2)
        size = f.tell()
        f.seek(0)
        if magic == b"\x93NUMPY":
            counts, where = _read_npy(f, size, path, ""), ""
            names = ids = None
        elif magic[:2] == b"PK":
            arrays = _read_npz(f, path)
            if "counts" in arrays:
                where = "counts"
            else:
                two_d = [k for k, v in arrays.items() if v.ndim == 2]
                if len(two_d) != 1:
                    raise LabelFormatError(path, "", f"expected an array named 'counts' "
                                           f"(found {', '.join(arrays) or 'none'})")
                where = two_d[0]
            counts = arrays[where]
            names = arrays.get("class_names")
            ids = arrays.get("image_ids")
        else:
            raise LabelFormatError(path, "", "not a NumPy file (.npy or .npz)")
    counts = _as_count_matrix(counts, path, where or "counts")
    n, c = counts.shape
    names = _check_names(range(c) if names is None else np.ravel(names).tolist(), c, path,
                         "class_names")
    ids = _check_names(range(n) if ids is None else np.ravel(ids).tolist(), n, path,
                       "image_ids")
    return LabelSet(counts, names, ids, "numpy", str(path))


def _read_npz(f: Any, path: pathlib.Path) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(f) as z:
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                limit = info.compress_size * (_MAX_INFLATE if info.compress_type else 1)
                if info.file_size > limit + 4096:
                    raise LabelFormatError(path, info.filename, "member claims more data "
                                           "than its compressed size can hold")
                with z.open(info) as member:
                    arrays[info.filename[:-4]] = _read_npy(member, info.file_size, path,
                                                           info.filename[:-4])
    except LabelFormatError:
        raise
    except Exception as e:  # noqa: BLE001 - zipfile raises many types on a hostile archive
        raise LabelFormatError(path, "", f"not a readable .npz archive ({e})") from None
    return arrays
