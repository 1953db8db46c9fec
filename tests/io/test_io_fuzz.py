"""Property tests for the readers: mutated files fail only with `LabelFormatError`, within a
small multiple of their size in memory; valid random inputs round-trip.

The default profile keeps the file to ~20 s; ``-m slow`` runs the bigger profile
(``JBALANCE_FUZZ_EXAMPLES`` overrides the example count).
"""

import io
import json
import os
import pathlib
import shutil
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jbalance.io as jio

FAST = int(os.environ.get("JBALANCE_FUZZ_EXAMPLES", 25))
_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                       HealthCheck.function_scoped_fixture],
                 derandomize=True)
# Memory a reader may use: a fixed allowance (interpreter objects, the bounded count-matrix
# floor) plus a small multiple of the input.
_MEMORY_FLOOR = 2 << 20
_MEMORY_PER_BYTE = 64


# ------------------------------------------------------------------------------------------
# Seed files, one per format (small and valid).


def _seed_files(rng):
    """{name: (format, {relative path: bytes})}."""
    n, c = 4, 3
    counts = rng.integers(0, 3, (n, c))
    names = ["cat", "dog", "bird"]
    coco = {"images": [{"id": i + 1, "file_name": f"{i}.jpg", "height": 48, "width": 64}
                       for i in range(n)],
            "annotations": [{"id": k, "image_id": int(i) + 1, "category_id": int(j) + 1,
                             "bbox": [1.5, 2, 10, 12], "iscrowd": 0}
                            for k, (i, j) in enumerate(zip(*np.nonzero(counts)))],
            "categories": [{"id": j + 1, "name": names[j]} for j in range(c)]}
    yolo = {"data.yaml": b"path: .\ntrain: images\nnames: {0: cat, 1: dog, 2: bird}\n"}
    for i in range(n):
        lines = "".join(f"{j} 0.5 0.5 0.25 0.125\n" for j in range(c)
                        for _ in range(counts[i, j]))
        yolo[f"labels/{i}.txt"] = lines.encode()
    voc = {}
    for i in range(n):
        objs = "".join(f"<object><name>{names[j]}</name><difficult>0</difficult><bndbox>"
                       f"<xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>"
                       f"</object>" for j in range(c) for _ in range(counts[i, j]))
        voc[f"Annotations/{i}.xml"] = (f"<annotation><filename>{i}.jpg</filename><size>"
                                       f"<width>64</width><height>48</height></size>{objs}"
                                       f"</annotation>").encode()
    wide = "image_id,cat,dog,bird\n" + "".join(
        f"img{i},{','.join(map(str, counts[i]))}\n" for i in range(n))
    long = "image_id,label\n" + "".join(f"img{i},{names[j]}\n" for i in range(n)
                                        for j in range(c) for _ in range(counts[i, j]))
    npy = io.BytesIO()
    np.save(npy, counts)
    npz = io.BytesIO()
    np.savez_compressed(npz, counts=counts, class_names=np.array(names))
    plan = json.dumps({f"img{i}": int(i) for i in range(n)})
    return {
        "coco": ("coco", {"instances.json": json.dumps(coco).encode()}),
        "yolo": ("yolo", yolo),
        "voc": ("voc", voc),
        "csv-wide": ("csv", {"labels.csv": wide.encode()}),
        "csv-long": ("csv", {"labels.csv": long.encode()}),
        "npy": ("numpy", {"counts.npy": npy.getvalue()}),
        "npz": ("numpy", {"counts.npz": npz.getvalue()}),
        "plan": ("repeats", {"plan.json": plan.encode()}),
    }


SEEDS = _seed_files(np.random.default_rng(0))


def _mutate(data: bytes, kind: str, draw) -> bytes:
    if not data:
        return data
    if kind == "truncate":
        return data[:draw(st.integers(0, len(data) - 1))]
    if kind == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            k = draw(st.integers(0, len(out) - 1))
            out[k] ^= draw(st.integers(1, 255))
        return bytes(out)
    if kind == "huge-number":
        k = draw(st.integers(0, len(data)))
        number = draw(st.sampled_from([b"2000000000", b"1e26", b"-1", b"9" * 400, b"1e400",
                                       b"NaN", b"Infinity", b"18446744073709551617"]))
        return data[:k] + number + data[k:]
    if kind == "nesting":
        k = draw(st.integers(0, len(data)))
        depth = draw(st.sampled_from([50, 5000, 100_000]))
        opener = draw(st.sampled_from([b"[", b"{\"a\":", b"<a>"]))
        closer = {b"[": b"]", b"{\"a\":": b"}", b"<a>": b"</a>"}[opener]
        return data[:k] + opener * depth + closer * depth + data[k:]
    if kind == "encoding":
        text = data.decode("utf-8", errors="replace") + "é猫"
        return text.encode(draw(st.sampled_from(["utf-16", "latin-1", "cp1252"])),
                           errors="replace")
    raise AssertionError(kind)


def _read(root: pathlib.Path, fmt: str, files: dict, boxes: bool):
    if fmt == "repeats":
        return jio.read_repeats(root / "plan.json")
    path = root / next(iter(files)) if fmt in ("coco", "csv", "numpy") else root
    return jio.load(path, format=fmt, boxes=boxes and fmt in ("coco", "yolo", "voc"))


@st.composite
def mutated(draw):
    name = draw(st.sampled_from(sorted(SEEDS)))
    fmt, files = SEEDS[name]
    files = dict(files)
    target = draw(st.sampled_from(sorted(files)))
    kind = draw(st.sampled_from(["truncate", "flip", "huge-number", "nesting", "encoding"]))
    files[target] = _mutate(files[target], kind, draw)
    return name, fmt, files, draw(st.booleans())


def _write(root: pathlib.Path, files: dict) -> int:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return sum(len(d) for d in files.values())


def _check_mutated(case, tmp_root):
    name, fmt, files, boxes = case
    root = tmp_root / "case"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    size = _write(root, files)
    tracemalloc.start()
    try:
        out = _read(root, fmt, files, boxes)
    except jio.LabelFormatError as e:
        assert e.path, (name, str(e))  # names the file
        out = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak <= _MEMORY_FLOOR + _MEMORY_PER_BYTE * size, (name, peak, size)
    if isinstance(out, jio.LabelSet):  # what was accepted is consistent
        assert out.counts.dtype == np.int32 and out.counts.min(initial=0) >= 0
        assert len(out.image_ids) == out.num_images and len(out.class_names) == out.num_classes
        if out.objects is not None:
            counts = np.zeros(out.counts.shape, np.int64)
            np.add.at(counts, (out.objects.image_index, out.objects.class_index), 1)
            np.testing.assert_array_equal(counts, out.counts)


@settings(max_examples=FAST * 4, **_SETTINGS)
@given(case=mutated())
def test_mutated_files_raise_only_label_format_error(case, tmp_path_factory):
    _check_mutated(case, tmp_path_factory.getbasetemp())


# A fresh random draw each run (not derandomized): 12 x JBALANCE_FUZZ_EXAMPLES (default 25)
# mutated files, about 40 s of the full suite; raise the variable for a longer hunt.
@pytest.mark.slow
@settings(max_examples=FAST * 12, **{**_SETTINGS, "derandomize": False})
@given(case=mutated())
def test_mutated_files_big_profile(case, tmp_path_factory):
    _check_mutated(case, tmp_path_factory.getbasetemp())


@settings(max_examples=FAST * 2, **_SETTINGS)
@given(data=st.binary(max_size=400), suffix=st.sampled_from(
    [".json", ".csv", ".tsv", ".npy", ".npz"]))
def test_random_bytes(data, suffix, tmp_path_factory):
    path = tmp_path_factory.getbasetemp() / f"random{suffix}"
    path.write_bytes(data)
    try:
        jio.load(path)
    except jio.LabelFormatError:
        pass


# ------------------------------------------------------------------------------------------
# Valid random inputs round-trip.

_ids = st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
                        min_size=1, max_size=8).map(str.strip).filter(bool),
                min_size=1, max_size=6, unique=True)


@settings(max_examples=FAST, **_SETTINGS)
@given(ids=_ids, seed=st.integers(0, 2**32 - 1), num_classes=st.integers(1, 4))
def test_label_sets_round_trip(ids, seed, num_classes, tmp_path_factory):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 5, (len(ids), num_classes))
    names = [f"class {j}" for j in range(num_classes)]
    ls = jio.from_counts(counts, class_names=names, image_ids=ids)
    root = tmp_path_factory.getbasetemp()
    back = jio.read_numpy(jio.write_label_set(root / "rt.npz", ls))
    np.testing.assert_array_equal(back.counts, counts)
    assert back.class_names == names and back.image_ids == ids
    if all(i == i.strip() and "," not in i and '"' not in i for i in ids):
        back = jio.read_csv(jio.write_label_set(root / "rt.csv", ls), id_column="image_id",
                            layout="wide")
        np.testing.assert_array_equal(back.counts, counts)
        assert back.image_ids == ids


@settings(max_examples=FAST, **_SETTINGS)
@given(ids=_ids, seed=st.integers(0, 2**32 - 1), suffix=st.sampled_from([".csv", ".json"]))
def test_plans_round_trip(ids, seed, suffix, tmp_path_factory):
    repeats = np.random.default_rng(seed).integers(0, 7, len(ids))
    path = jio.write_repeats(tmp_path_factory.getbasetemp() / f"plan{suffix}", repeats,
                             image_ids=ids)
    back_ids, back = jio.read_repeats(path)
    assert back_ids == ids and back.tolist() == repeats.tolist()


@settings(max_examples=FAST, **_SETTINGS)
@given(boxes=st.lists(st.tuples(st.integers(0, 2), st.floats(0, 1, width=32),
                                st.floats(0, 1, width=32), st.floats(0, 1, width=32),
                                st.floats(0, 1, width=32)), max_size=12),
       split=st.integers(0, 12))
def test_yolo_boxes_round_trip(boxes, split, tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "yolo_rt"
    shutil.rmtree(root, ignore_errors=True)
    (root / "labels").mkdir(parents=True)
    (root / "data.yaml").write_text("names: [a, b, c]\n")
    parts = [boxes[:split], boxes[split:]]
    for i, part in enumerate(parts):
        (root / "labels" / f"{i}.txt").write_text(
            "".join(f"{c} {x!r} {y!r} {w!r} {h!r}\n" for c, x, y, w, h in part))
    ls = jio.read_yolo(root, boxes=True)
    expected = [(i, b) for i, part in enumerate(parts) for b in part]
    np.testing.assert_array_equal(ls.objects.image_index, [i for i, _ in expected])
    np.testing.assert_array_equal(ls.objects.class_index, [b[0] for _, b in expected])
    np.testing.assert_array_equal(ls.objects.boxes,
                                  np.asarray([b[1:] for _, b in expected],
                                             np.float32).reshape(-1, 4))
