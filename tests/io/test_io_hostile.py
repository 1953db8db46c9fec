"""Hostile and careless inputs: atomic writes, bounded readers, one error type.

Every case here failed (a traceback, a lost file or gigabytes of memory) before the io split.
"""

import errno
import json
import os
import pathlib
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import jbalance.io as jio
from jbalance._src.io import writers

# ------------------------------------------------------------------------------------------
# Atomic writes


class _FailingFile:
    """A binary file that takes ``limit`` bytes, then fails like a full disk."""

    def __init__(self, f, limit):
        self._f, self._left = f, limit

    def write(self, data):
        data = bytes(data)
        if len(data) > self._left:
            self._f.write(data[:self._left])
            self._left = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self._left -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


LS = jio.from_counts(np.arange(600).reshape(200, 3) % 4, class_names=["a", "b", "c"],
                     image_paths=[f"images/{i:05d}.jpg" for i in range(200)])
IDX = np.repeat(np.arange(200), 2)
WRITERS = {
    "repeats.csv": lambda p: jio.write_repeats(p, IDX[:200], image_ids=LS.image_ids),
    "repeats.json": lambda p: jio.write_repeats(p, IDX[:200], image_ids=LS.image_ids),
    "indices.npy": lambda p: jio.write_indices(p, IDX),
    "indices.json": lambda p: jio.write_indices(p, IDX, image_ids=LS.image_ids),
    "indices.csv": lambda p: jio.write_indices(p, IDX, image_ids=LS.image_ids),
    "indices.txt": lambda p: jio.write_indices(p, IDX, image_ids=LS.image_ids),
    "labels.npz": lambda p: jio.write_label_set(p, LS),
    "labels.csv": lambda p: jio.write_label_set(p, LS),
    "train.txt": lambda p: jio.write_image_list(p, LS, IDX),
}


@pytest.mark.parametrize("name", list(WRITERS))
def test_writer_failing_part_way_keeps_the_old_file(tmp_path, monkeypatch, name):
    target = tmp_path / name
    target.write_bytes(b"OLD CONTENT\n")
    real_fdopen = os.fdopen
    monkeypatch.setattr(writers.os, "fdopen",
                        lambda fd, mode: _FailingFile(real_fdopen(fd, mode), 100))
    with pytest.raises(OSError) as info:
        WRITERS[name](target)
    assert info.value.errno == errno.ENOSPC
    assert str(target) in str(info.value)  # the error names the path
    assert target.read_bytes() == b"OLD CONTENT\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left
    monkeypatch.undo()
    out = WRITERS[name](target)  # and the same call works once the disk has room
    assert out == target and target.read_bytes() != b"OLD CONTENT\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_writer_error_while_formatting_keeps_the_old_file(tmp_path):
    target = tmp_path / "plan.csv"
    target.write_text("old\n")

    def write(f):
        f.write(b"partial")
        raise RuntimeError("formatting failed")

    with pytest.raises(RuntimeError):
        writers.atomic_write(target, write)
    assert target.read_text() == "old\n" and len(list(tmp_path.iterdir())) == 1


def test_writer_errors_name_the_path_and_modes_are_kept(tmp_path):
    missing = tmp_path / "no_such_folder" / "plan.csv"
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        jio.write_repeats(missing, [1, 2])
    new = jio.write_repeats(tmp_path / "new.csv", [1])
    assert new.stat().st_mode & 0o777 == 0o666 & ~_umask()
    os.chmod(new, 0o640)
    jio.write_repeats(new, [2])
    assert new.stat().st_mode & 0o777 == 0o640 and new.read_text().endswith("0,2\n")


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_writers_always_utf8(tmp_path, monkeypatch):
    monkeypatch.setenv("LC_ALL", "C")
    monkeypatch.setenv("PYTHONIOENCODING", "ascii")
    ids = ["café", "猫", "naïve,comma"]
    for suffix in (".csv", ".json"):
        path = jio.write_repeats(tmp_path / f"p{suffix}", [1, 2, 3], image_ids=ids)
        path.read_bytes().decode("utf-8")
        assert jio.read_repeats(path)[0] == ids
    text = jio.write_indices(tmp_path / "i.txt", [1, 0], image_ids=ids).read_bytes()
    assert text.decode("utf-8") == "猫\ncafé\n"


# ------------------------------------------------------------------------------------------
# Bounded readers


def _yolo(tmp_path, line, names=None):
    root = tmp_path / "ds"
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n" + line + "\n")
    if names is not None:
        (root / "data.yaml").write_text(f"names: {names}\n")
    return root


def test_yolo_huge_class_id_without_names_is_refused_at_once(tmp_path):
    root = _yolo(tmp_path, "2000000000 0.5 0.5 0.1 0.1")
    tracemalloc.start()
    t = time.perf_counter()
    with pytest.raises(jio.LabelFormatError) as info:
        jio.load(root)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert time.perf_counter() - t < 1 and peak < 1 << 20
    assert f"{root / 'labels' / 'a.txt'}, line 2" in str(info.value)
    assert "below 1024" in str(info.value)


def test_yolo_class_id_bound(tmp_path):
    ls = jio.load(_yolo(tmp_path / "ok", f"{jio.MAX_UNNAMED_CLASSES - 1} 0.5 0.5 0.1 0.1"))
    assert ls.num_classes == jio.MAX_UNNAMED_CLASSES
    with pytest.raises(jio.LabelFormatError, match="below 1024"):
        jio.load(_yolo(tmp_path / "no", f"{jio.MAX_UNNAMED_CLASSES} 0.5 0.5 0.1 0.1"))
    with pytest.raises(jio.LabelFormatError, match="out of range: 2 class names"):
        jio.load(_yolo(tmp_path / "named", "2 0.5 0.5 0.1 0.1", names="[a, b]"))
    with pytest.raises(jio.LabelFormatError, match="not a non-negative integer"):
        jio.load(_yolo(tmp_path / "digits", "9" * 5000 + " 0.5 0.5 0.1 0.1"))


@pytest.mark.parametrize("cell", ["1e26", "99999999999", "9" * 5000, "inf", "1e400"])
def test_csv_huge_cells(tmp_path, cell):
    path = tmp_path / "t.csv"
    path.write_text(f"image_id,a\nx,1\ny,{cell}\n")
    with pytest.raises(jio.LabelFormatError, match=r"t\.csv, line 3: column 'a'"):
        jio.read_csv(path)


def test_csv_long_table_cannot_blow_up_the_count_matrix(tmp_path):
    path = tmp_path / "long.csv"
    # 3000 images, each with its own label: 9M cells from 40 kB.
    path.write_text("image_id,label\n" + "".join(f"{i},{i}\n" for i in range(3000)))
    with pytest.raises(jio.LabelFormatError, match="3000 images x 3000 classes"):
        jio.read_csv(path)


def test_non_utf8_text_names_the_file(tmp_path):
    csv_path = tmp_path / "t.csv"
    csv_path.write_bytes("image_id,a\nçà,1\n".encode("latin-1"))
    with pytest.raises(jio.LabelFormatError, match=r"t\.csv, line 2 \(byte 11\): not UTF-8"):
        jio.read_csv(csv_path)
    root = _yolo(tmp_path, "0 0.5 0.5 0.1 0.1")
    (root / "labels" / "b.txt").write_bytes(b"0 0.5 0.5 0.1 0.1\n1 0.5\xff 0.5 0.1 0.1\n")
    with pytest.raises(jio.LabelFormatError, match=r"b\.txt, line 2 .*not UTF-8"):
        jio.load(root)
    (root / "labels" / "b.txt").unlink()
    (root / "data.yaml").write_bytes("names: [é]\n".encode("utf-16"))
    with pytest.raises(jio.LabelFormatError, match=r"data\.yaml, line 1 .*not UTF-8"):
        jio.load(root)


def test_corrupt_and_lying_numpy_files(tmp_path):
    good = tmp_path / "good.npz"
    np.savez_compressed(good, counts=np.ones((50, 4), np.int32))
    data = good.read_bytes()
    for name, payload in {"truncated.npz": data[:len(data) // 2],
                          "flipped.npz": data[:60] + bytes(b ^ 0xFF for b in data[60:90])
                          + data[90:],
                          "garbage.npz": b"PK\x03\x04" + b"\0" * 50}.items():
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(jio.LabelFormatError, match=name):
            jio.load(tmp_path / name)
    # A .npy header promising 8 TB in a 200-byte file: refused before any allocation.
    lying = tmp_path / "lying.npy"
    with open(lying, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<i8", "fortran_order": False,
                                                 "shape": (10**6, 10**6)})
        f.write(b"\0" * 64)
    tracemalloc.start()
    with pytest.raises(jio.LabelFormatError, match="promises"):
        jio.load(lying)
    assert tracemalloc.get_traced_memory()[1] < 1 << 20
    tracemalloc.stop()
    # The same header inside an .npz member (stored, so no inflation excuse).
    with zipfile.ZipFile(tmp_path / "lying.npz", "w") as z:
        z.writestr("counts.npy", lying.read_bytes())
    with pytest.raises(jio.LabelFormatError, match="promises"):
        jio.load(tmp_path / "lying.npz")


def test_deeply_nested_json(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"images": ' + "[" * 200_000 + "]" * 200_000 + "}")
    with pytest.raises(jio.LabelFormatError, match="nested too deeply"):
        jio.read_coco(path)
    plan = tmp_path / "plan.json"
    plan.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(jio.LabelFormatError, match="nested too deeply"):
        jio.read_repeats(plan)
    plan.write_text('{"a": 100000000000000000000}')
    with pytest.raises(jio.LabelFormatError, match="non-negative integer"):
        jio.read_repeats(plan)


def test_yaml_bombs_and_size(tmp_path):
    root = _yolo(tmp_path, "0 0.5 0.5 0.1 0.1")
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi")) + "names: *i\n"
    (root / "data.yaml").write_text(laughs)
    t = time.perf_counter()
    with pytest.raises(jio.LabelFormatError, match="a class name must be"):
        jio.load(root)
    assert time.perf_counter() - t < 1
    (root / "data.yaml").write_text("names: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(jio.LabelFormatError, match=r"data\.yaml"):
        jio.load(root)
    (root / "data.yaml").write_text("names: [a]\n#" + "x" * (1 << 20) + "\n")
    with pytest.raises(jio.LabelFormatError, match="larger than 1048576 bytes"):
        jio.load(root)


def test_folder_with_several_formats_is_an_error(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text("<annotation/>")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(jio.LabelFormatError, match=r"several label formats \(voc, yolo\)"):
        jio.load(tmp_path)
    assert jio.load(tmp_path, format="yolo").counts.tolist() == [[1]]
    assert jio.load(tmp_path, format="voc").counts.shape == (1, 0)


def test_label_format_error_pickles():
    import pickle

    err = pickle.loads(pickle.dumps(jio.LabelFormatError("f.txt", "line 2", "bad")))
    assert str(err) == "f.txt, line 2: bad" and err.where == "line 2"


def test_coco_cells_are_bounded_by_the_input(tmp_path):
    path = tmp_path / "wide.json"
    # Every image and category costs bytes in the file: a normal file passes ...
    doc = {"images": [{"id": i} for i in range(300)], "annotations": [],
           "categories": [{"id": j, "name": str(j)} for j in range(300)]}
    path.write_text(json.dumps(doc))
    assert jio.read_coco(path).counts.shape == (300, 300)
    # ... and the budget is what the docs say: CELL_FLOOR + 16 cells per byte of input.
    from jbalance._src.io.common import CELL_FLOOR, _check_cells

    _check_cells(1, CELL_FLOOR + 16 * 1000, 1000, path)
    with pytest.raises(jio.LabelFormatError, match=r"1 images x 81537 classes .* 1000 bytes"):
        _check_cells(1, CELL_FLOOR + 16 * 1000 + 1, 1000, path)


def test_bound_rules_are_documented():
    doc = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "io.md").read_text()
    for needle in ("1024", "16 cells per byte", "atomic", "LabelFormatError", "os.replace"):
        assert needle in doc, needle
