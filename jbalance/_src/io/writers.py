"""Writers for plans and label sets; every file is written atomically.

`atomic_write` is the one way a file is written: into a temporary file in the target's
folder, flushed and ``fsync``-ed, then moved over the target with ``os.replace`` (atomic on
POSIX and Windows). A failure part-way (disk full, ``ulimit -f``, an exception while
formatting) leaves the old file as it was and no temporary file behind; OS errors are
re-raised naming the target path. Text is always UTF-8, whatever the locale.
"""

import contextlib
import csv
import io
import json
import os
import pathlib
import tempfile
from collections.abc import Callable, Sequence
from typing import IO, Any

import numpy as np

from jbalance._src.io.coco import _loads
from jbalance._src.io.common import _INT32_MAX, LabelFormatError, LabelSet, PathLike, _read_bytes
from jbalance._src.io.csv import read_csv


def _default_mode() -> int:
    """0o666 minus the process umask: the mode ``open(path, "w")`` would give a new file."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], None]) -> pathlib.Path:
    r"""Writes ``path`` atomically: ``write(f)`` fills a binary temp file that replaces it.

    The one way jbalance writes files: a temporary file in the same folder is filled,
    flushed, ``fsync``-ed, given the old file's permissions and moved over ``path`` with
    `os.replace`. A failure part-way leaves the old file intact and no temporary file.

    Args:
      path: the file to write.
      write: called once with the open binary temp file (e.g. ``fig.savefig(f)``).

    Returns:
      ``path`` as a `pathlib.Path`.

    Raises:
      OSError: of the original type and errno, naming ``path``.

    Examples:
      >>> import pathlib, tempfile
      >>> from jbalance import io
      >>> target = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
      >>> io.atomic_write(target, lambda f: f.write(b"hello")).read_text()
      'hello'
    """
    path = pathlib.Path(path)
    folder = path.parent
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = _default_mode()
    except OSError as e:
        raise type(e)(e.errno, f"cannot write {path}: {e.strerror}", str(path)) from e
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise type(e)(e.errno, f"cannot write {path}: {e.strerror or e}", str(path)) from e
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def _write_text(path: PathLike, text: str) -> pathlib.Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _write_csv(path: PathLike, rows: Any) -> pathlib.Path:
    """CSV rows (first the header) as UTF-8 with ``\n`` line ends."""
    def write(f: IO[bytes]) -> None:
        text = io.TextIOWrapper(f, encoding="utf-8", newline="", write_through=True)
        csv.writer(text, lineterminator="\n").writerows(rows)
        text.flush()
        text.detach()  # leave the binary file open for atomic_write's fsync

    return atomic_write(path, write)


def _check_repeats(repeats: Any, image_ids: Sequence[Any] | None) -> tuple[np.ndarray, list[str]]:
    arr = np.asarray(repeats)
    if arr.ndim != 1:
        raise ValueError(f"`repeats` must be 1-D [num_images], got shape {arr.shape}.")
    if arr.dtype.kind not in "iub":
        if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError("`repeats` must hold whole numbers (round fractional rates first, "
                             "e.g. with `jbalance.resample.stochastic_round`).")
    if arr.size and arr.min() < 0:
        raise ValueError(f"`repeats` must be >= 0, got {arr.min()}.")
    arr = arr.astype(np.int64)
    if image_ids is None:
        ids = [str(i) for i in range(arr.size)]
    else:
        ids = [str(i) for i in image_ids]
        if len(ids) != arr.size:
            raise ValueError(f"`image_ids` has {len(ids)} entries but `repeats` has "
                             f"{arr.size}; they must match.")
        if len(set(ids)) != len(ids):
            raise ValueError("`image_ids` must be unique.")
    return arr, ids


def write_repeats(path: PathLike, repeats: Any, *, image_ids: Sequence[Any] | None = None,
                  format: str | None = None) -> pathlib.Path:
    r"""Writes per-image repeat counts as CSV (``image_id,repeats``) or JSON ``{id: repeats}``.

    A repeat count of 0 drops the image, 1 keeps it, ``k`` shows it ``k`` times per epoch.

    Args:
      path: Output file; ``.json`` writes JSON, anything else CSV.
      repeats: Whole numbers ``[num_images]`` (e.g. ``Solution.repeats``).
      image_ids: ``num_images`` unique ids (e.g. ``LabelSet.image_ids``); default the row
        indices.
      format: ``"csv"`` or ``"json"`` to override the suffix.

    Returns:
      The path written.

    Raises:
      ValueError: If ``repeats`` is not 1-D whole non-negative numbers or the ids do not match.
      OSError: If the file cannot be written (the message names ``path``; an existing file
        is left as it was: every writer writes atomically).

    Examples:
      >>> import tempfile, pathlib
      >>> from jbalance.io import write_repeats, read_repeats
      >>> p = pathlib.Path(tempfile.mkdtemp()) / "plan.csv"
      >>> p = write_repeats(p, [0, 2], image_ids=["a", "b"])
      >>> p.read_text().splitlines()
      ['image_id,repeats', 'a,0', 'b,2']
    """
    arr, ids = _check_repeats(repeats, image_ids)
    path = pathlib.Path(path)
    if format is None:
        format = "json" if path.suffix.lower() == ".json" else "csv"
    if format not in ("csv", "json"):
        raise ValueError(f"`format` must be 'csv' or 'json', got {format!r}.")
    if format == "json":
        return _write_text(path, json.dumps(dict(zip(ids, arr.tolist())), indent=1,
                                            ensure_ascii=False) + "\n")
    return _write_csv(path, [["image_id", "repeats"], *zip(ids, arr.tolist())])


def read_repeats(path: PathLike) -> tuple[list[str], np.ndarray]:
    r"""Reads a file written by `write_repeats`.

    Args:
      path: A ``.json`` (``{id: repeats}``) or CSV (``image_id,repeats``) file.

    Returns:
      ``(image_ids, repeats)`` with ``repeats`` an ``int64`` array.

    Raises:
      FileNotFoundError: If ``path`` does not exist.
      LabelFormatError: On malformed content or negative/non-integer repeats.

    Examples:
      >>> import tempfile, pathlib
      >>> from jbalance.io import read_repeats, write_repeats
      >>> p = write_repeats(pathlib.Path(tempfile.mkdtemp()) / "plan.json", [3, 0],
      ...                   image_ids=["a", "b"])
      >>> ids, repeats = read_repeats(p)
      >>> ids, repeats.tolist()
      (['a', 'b'], [3, 0])
    """
    path = pathlib.Path(path)
    if path.suffix.lower() == ".json":
        doc = _loads(_read_bytes(path), path)
        if not isinstance(doc, dict):
            raise LabelFormatError(path, "top level", "expected an object {image_id: repeats}")
        ids, vals = list(doc), []
        for k, v in doc.items():
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= _INT32_MAX:
                raise LabelFormatError(path, f"key {k!r}", f"repeats must be a non-negative "
                                       f"integer, got {v!r}")
            vals.append(v)
        return ids, np.asarray(vals, dtype=np.int64)
    ls = read_csv(path, id_column="image_id", layout="wide")
    if ls.class_names != ["repeats"]:
        raise LabelFormatError(path, "line 1", "expected the columns image_id,repeats")
    return ls.image_ids, ls.counts[:, 0].astype(np.int64)


def _check_indices(indices: Any, size: int | None) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
        raise ValueError(f"`indices` must be a 1-D integer array, got shape {idx.shape} and "
                         f"dtype {idx.dtype}.")
    idx = idx.astype(np.int64)
    if idx.size and idx.min() < 0:
        raise ValueError(f"`indices` must be >= 0, got {idx.min()}.")
    if size is not None and idx.size and idx.max() >= size:
        raise ValueError(f"`indices` holds {idx.max()} but there are only {size} image "
                         f"ids.")
    return idx


def write_indices(path: PathLike, indices: Any, *,
                  image_ids: Sequence[Any] | None = None) -> pathlib.Path:
    r"""Writes a resampled index list (one entry per drawn example, e.g. `resample.indices`).

    Formats by suffix: ``.npy`` (int64 row indices), ``.json`` (a list of image ids, or of
    indices without ids), ``.csv`` (columns ``index,image_id``), anything else plain text with
    one image id (or index) per line.

    Args:
      path: Output file.
      indices: Row indices ``[num_drawn]`` into the label set, in the order to write.
      image_ids: Ids of the rows, so ids can be written instead of indices.

    Returns:
      The path written.

    Raises:
      ValueError: If ``indices`` is not 1-D integers within ``[0, len(image_ids))``.
      OSError: If the file cannot be written (names ``path``; written atomically).

    Examples:
      >>> import tempfile, pathlib
      >>> from jbalance.io import write_indices
      >>> p = write_indices(pathlib.Path(tempfile.mkdtemp()) / "idx.txt", [2, 0, 2],
      ...                   image_ids=["a", "b", "c"])
      >>> p.read_text().split()
      ['c', 'a', 'c']
    """
    ids = None if image_ids is None else [str(i) for i in image_ids]
    idx = _check_indices(indices, None if ids is None else len(ids))
    path = pathlib.Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return atomic_write(path, lambda f: np.save(f, idx))
    if suffix == ".json":
        items = idx.tolist() if ids is None else [ids[i] for i in idx]
        return _write_text(path, json.dumps(items, ensure_ascii=False) + "\n")
    if suffix == ".csv":
        return _write_csv(path, [["index", "image_id"],
                                 *([i, i if ids is None else ids[i]] for i in idx.tolist())])
    lines = (str(i) for i in idx.tolist()) if ids is None else (ids[i] for i in idx)
    return _write_text(path, "".join(f"{s}\n" for s in lines))


def write_label_set(path: PathLike, label_set: LabelSet) -> pathlib.Path:
    r"""Saves a `LabelSet` as ``.npz`` (``counts``, ``class_names``, ``image_ids``) or CSV.

    The ``.npz`` loads back with `read_numpy` without pickle; a ``.csv`` path writes the wide
    table `read_csv` reads (``image_id`` then one column per class).

    Args:
      path: ``.npz`` or ``.csv`` output file.
      label_set: What to save.

    Returns:
      The path written (``.npz`` added when ``path`` has no suffix).

    Raises:
      OSError: If the file cannot be written (names ``path``; written atomically).

    Examples:
      >>> import tempfile, pathlib
      >>> from jbalance.io import from_counts, read_numpy, write_label_set
      >>> ls = from_counts([[1, 0], [0, 3]], class_names=["cat", "dog"])
      >>> p = write_label_set(pathlib.Path(tempfile.mkdtemp()) / "labels.npz", ls)
      >>> read_numpy(p).counts.tolist()
      [[1, 0], [0, 3]]
    """
    path = pathlib.Path(path)
    if path.suffix.lower() == ".csv":
        return _write_csv(path, [["image_id", *label_set.class_names],
                                 *([image_id, *row] for image_id, row in
                                   zip(label_set.image_ids,
                                       np.asarray(label_set.counts).tolist()))])
    if not path.suffix:
        path = path.with_suffix(".npz")  # what np.savez would do
    arrays = {"counts": np.asarray(label_set.counts, np.int32),
              "class_names": np.asarray(label_set.class_names, dtype=str),
              "image_ids": np.asarray(label_set.image_ids, dtype=str)}
    return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def write_image_list(path: PathLike, label_set: LabelSet, indices: Any) -> pathlib.Path:
    r"""Writes an image list (one path per line), e.g. for an Ultralytics ``train:`` entry.

    Ultralytics (and Darknet) accept a ``.txt`` file of image paths wherever a ``train:``
    folder goes; writing the resampled index list this way trains on the plan without copying
    any image. An image drawn ``k`` times appears on ``k`` lines.

    Args:
      path: Output ``.txt`` file (written atomically, UTF-8).
      label_set: A `LabelSet` whose ``image_paths`` are known (COCO, VOC, YOLO with images).
      indices: Row indices ``[num_drawn]`` into the label set (e.g. `resample.indices` or
        `sampling.epoch_indices`; ``np.arange(label_set.num_images)`` lists every image
        once).

    Returns:
      The path written.

    Raises:
      ValueError: If ``label_set.image_paths`` is None, a path holds a line break, or
        ``indices`` is not 1-D integers within ``[0, num_images)``.

    Examples:
      >>> import tempfile, pathlib
      >>> from jbalance.io import from_counts, write_image_list
      >>> ls = from_counts([[1, 0], [0, 1]], image_paths=["images/a.jpg", "images/b.jpg"])
      >>> p = write_image_list(pathlib.Path(tempfile.mkdtemp()) / "train.txt", ls, [1, 1, 0])
      >>> p.read_text().splitlines()
      ['images/b.jpg', 'images/b.jpg', 'images/a.jpg']
    """
    paths = label_set.image_paths
    if paths is None:
        raise ValueError("`label_set.image_paths` is None: this label set does not say where "
                         "its images are (read COCO with image_root=..., or a YOLO folder "
                         "with its images/).")
    if any("\n" in p or "\r" in p for p in paths):
        raise ValueError("`label_set.image_paths`: a path holds a line break; it cannot be "
                         "written as one line.")
    idx = _check_indices(indices, len(paths))
    return _write_text(path, "".join(f"{paths[i]}\n" for i in idx.tolist()))
