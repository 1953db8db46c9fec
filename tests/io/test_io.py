"""Tests for jbalance.io: round trips through every format, malformed inputs, writers.

The annotation files are written here, from a known count matrix, by code that follows each
format's specification independently of the readers.
"""

import csv
import doctest
import importlib
import json
import pathlib

import numpy as np
import pytest

import jbalance
import jbalance.io as jio

NAMES = ["cat", "dog", "traffic light", "zebra"]


def _counts(seed=0, n=12, c=len(NAMES)):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(0.8, size=(n, c)).astype(np.int32)
    counts[3] = 0  # an image without objects must survive as an empty row
    counts[:, 2] = np.where(np.arange(n) == 5, 1, counts[:, 2])  # every class present
    return counts


def _ids(n):
    return [f"img{i:04d}" for i in range(n)]  # sorted order == row order


# ------------------------------------------------------------------------------------------
# Independent writers (from the format specifications).


def write_coco(path, counts, names, ids, *, cat_ids=None, crowd=None, extra=None):
    n, c = counts.shape
    cat_ids = cat_ids or [1 + 3 * j for j in range(c)]  # non-contiguous, like COCO's 1..90
    images = [{"id": 100 + i, "file_name": f"{ids[i]}.jpg", "width": 640, "height": 480}
              for i in range(n)]
    anns, k = [], 1
    for i in range(n):
        for j in range(c):
            for _ in range(int(counts[i, j])):
                anns.append({"id": k, "image_id": 100 + i, "category_id": cat_ids[j],
                             "bbox": [1, 2, 3, 4], "area": 12.0, "iscrowd": 0})
                k += 1
    for i, j in crowd or []:
        anns.append({"id": k, "image_id": 100 + i, "category_id": cat_ids[j],
                     "bbox": [0, 0, 9, 9], "area": 81.0, "iscrowd": 1})
        k += 1
    doc = {"info": {}, "images": images, "annotations": anns,
           "categories": [{"id": cat_ids[j], "name": names[j], "supercategory": "x"}
                          for j in range(c)]}
    if extra:
        extra(doc)
    pathlib.Path(path).write_text(json.dumps(doc))
    return path


def write_yolo(root, counts, names, ids, *, names_style="yaml-list", rng=None):
    rng = rng or np.random.default_rng(1)
    labels = pathlib.Path(root) / "labels"
    labels.mkdir(parents=True)
    for i, image_id in enumerate(ids):
        lines = []
        for j in range(counts.shape[1]):
            for _ in range(int(counts[i, j])):
                cx, cy, w, h = rng.uniform(0.05, 0.95, 4)
                lines.append(f"{j} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
        rng.shuffle(lines)
        (labels / f"{image_id}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    root = pathlib.Path(root)
    quoted = [f"'{n}'" if " " in n else n for n in names]
    if names_style == "yaml-list":
        (root / "data.yaml").write_text(
            f"path: .\ntrain: images\nnc: {len(names)}\nnames: [{', '.join(quoted)}]  # c\n")
    elif names_style == "yaml-block-list":
        (root / "data.yaml").write_text(
            "train: images\nnames:\n" + "".join(f"  - {q}\n" for q in quoted) + "nc: 4\n")
    elif names_style == "yaml-dict":
        (root / "data.yaml").write_text(
            "# ultralytics style\nnames:\n" + "".join(f"  {j}: {n}\n" for j, n in
                                                      enumerate(names)) + "train: x\n")
    elif names_style == "yaml-flow-dict":
        body = ", ".join(f"{j}: {q}" for j, q in enumerate(quoted))
        (root / "data.yaml").write_text(f"names: {{{body}}}\n")
    elif names_style == "classes.txt":
        (labels / "classes.txt").write_text("\n".join(names) + "\n")
    return root


def write_voc(root, counts, names, ids, *, difficult=()):
    ann = pathlib.Path(root) / "Annotations"
    ann.mkdir(parents=True)
    extra = {}
    for i, j in difficult:
        extra.setdefault(i, []).append(j)
    for i, image_id in enumerate(ids):
        objs = []
        for j in range(counts.shape[1]):
            objs += [(names[j], 0)] * int(counts[i, j])
        objs += [(names[j], 1) for j in extra.get(i, [])]
        body = "".join(
            f"<object><name>{n}</name><pose>Unspecified</pose><truncated>0</truncated>"
            f"<difficult>{d}</difficult><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax>"
            f"<ymax>40</ymax></bndbox></object>" for n, d in objs)
        (ann / f"{image_id}.xml").write_text(
            f"<annotation><folder>VOC</folder><filename>{image_id}.jpg</filename>"
            f"<size><width>500</width><height>375</height><depth>3</depth></size>"
            f"<segmented>0</segmented>{body}</annotation>")
    return pathlib.Path(root)


def write_csv_wide(path, counts, names, ids):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", *names])
        w.writerows([ids[i], *counts[i].tolist()] for i in range(len(ids)))
    return path


def write_csv_long(path, counts, names, ids):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "label"])
        for i, image_id in enumerate(ids):
            labels = [names[j] for j in range(len(names)) for _ in range(counts[i, j])]
            if not labels:
                w.writerow([image_id, ""])
            # One object per row for the first half, a space-separated cell for the rest.
            elif i % 2:
                w.writerow([image_id, ";".join(labels)])
            else:
                w.writerows([image_id, lab] for lab in labels)
    return path


# ------------------------------------------------------------------------------------------
# Round trips


def _check(ls, counts, names, ids, fmt):
    assert isinstance(ls, jio.LabelSet)
    assert ls.format == fmt
    assert ls.counts.dtype == np.int32 and ls.counts.shape == counts.shape
    np.testing.assert_array_equal(ls.counts, counts)
    assert list(ls.class_names) == list(names)
    assert list(ls.image_ids) == list(ids)


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc", "csv", "csv-long", "npy", "npz"])
def test_round_trip(tmp_path, fmt):
    counts = _counts()
    n = counts.shape[0]
    ids = _ids(n)
    names = NAMES
    if fmt == "coco":
        path = write_coco(tmp_path / "instances.json", counts, names, ids)
        ids = [str(100 + i) for i in range(n)]
        direct = jio.read_coco(path)
    elif fmt == "yolo":
        path = write_yolo(tmp_path / "ds", counts, names, ids)
        direct = jio.read_yolo(path / "labels")  # the labels folder itself works too
    elif fmt == "voc":
        path = write_voc(tmp_path / "VOC", counts, names, ids)
        names = sorted(names)
        counts = counts[:, np.argsort(NAMES)]
        direct = jio.read_voc(path / "Annotations")
    elif fmt == "csv":
        path = write_csv_wide(tmp_path / "labels.csv", counts, names, ids)
        direct = jio.read_csv(path)
    elif fmt == "csv-long":
        path = write_csv_long(tmp_path / "labels.csv", counts, names, ids)
        names = sorted(names)
        counts = counts[:, np.argsort(NAMES)]
        direct = jio.read_csv(path)
    elif fmt == "npy":
        path = tmp_path / "counts.npy"
        np.save(path, counts.astype(np.int64))
        names, ids = [str(j) for j in range(len(NAMES))], [str(i) for i in range(n)]
        direct = jio.read_numpy(path)
    else:
        path = tmp_path / "labels.npz"
        jio.write_label_set(path, jio.from_counts(counts, class_names=names, image_ids=ids))
        direct = jio.read_numpy(path)
    reader_fmt = {"csv-long": "csv", "npy": "numpy", "npz": "numpy"}.get(fmt, fmt)
    _check(jio.load(path), counts, names, ids, reader_fmt)
    _check(direct, counts, names, ids, reader_fmt)


def test_bundled_voc_loads_and_matches_its_note():
    ls = jio.load(pathlib.Path(jbalance.__file__).parent / "data" / "voc0712_trainval.npz")
    assert ls.counts.shape == (16551, 20) and ls.counts.sum() == 40058
    totals = ls.counts.sum(0)
    assert round(totals.max() / totals.min(), 1) == 16.3


def test_label_set_is_a_named_tuple_with_extras():
    ls = jio.from_counts(np.eye(3, 2, dtype=bool), class_names=["a", "b"])
    # The first fields unpack in their documented order; the optional extras are None.
    counts, names, ids, fmt, source, objects, sizes, paths = ls[:8]
    assert counts.dtype == np.int32 and names == ["a", "b"] and ids == ["0", "1", "2"]
    assert (ls.num_images, ls.num_classes, fmt, source) == (3, 2, "array", "")
    assert objects is None and sizes is None and paths is None
    assert all(getattr(ls, f) is None for f in ls._fields[8:]), ls._fields
    # The five-field constructor of earlier versions still works.
    old = jio.LabelSet(counts, names, ids, "csv", "x.csv")
    assert old.objects is None and old.image_paths is None and old.format == "csv"


def test_csv_wide_then_write_label_set_csv(tmp_path):
    counts = _counts(3)
    ls = jio.from_counts(counts, class_names=NAMES, image_ids=_ids(len(counts)))
    back = jio.read_csv(jio.write_label_set(tmp_path / "x.csv", ls))
    _check(back, counts, NAMES, ls.image_ids, "csv")


# ------------------------------------------------------------------------------------------
# COCO specifics


def test_coco_crowd_is_an_option(tmp_path):
    counts = _counts(1)
    path = write_coco(tmp_path / "a.json", counts, NAMES, _ids(len(counts)),
                      crowd=[(0, 1), (3, 1), (3, 2)])
    np.testing.assert_array_equal(jio.read_coco(path).counts, counts)
    with_crowd = counts.copy()
    with_crowd[0, 1] += 1
    with_crowd[3, 1] += 1
    with_crowd[3, 2] += 1
    np.testing.assert_array_equal(jio.read_coco(path, include_crowd=True).counts, with_crowd)
    np.testing.assert_array_equal(jio.load(path, include_crowd=True).counts, with_crowd)


def test_coco_category_order_and_non_contiguous_ids(tmp_path):
    counts = _counts(2)
    path = write_coco(tmp_path / "a.json", counts, NAMES, _ids(len(counts)),
                      cat_ids=[90, 1, 44, 7])
    ls = jio.read_coco(path)
    assert ls.class_names == NAMES  # columns follow the categories list, not the ids
    np.testing.assert_array_equal(ls.counts, counts)


def test_coco_bulk_matches_a_loop(tmp_path):
    """The vectorised path on a mid-sized file against a plain loop (speed: benchmarks)."""
    rng = np.random.default_rng(0)
    n, c, boxes = 3000, 80, 30000
    cat_ids = sorted(rng.choice(np.arange(1, 200), c, replace=False).tolist())
    img_of = rng.integers(0, n - 50, boxes)  # the last 50 images stay empty
    cat_of = rng.integers(0, c, boxes)
    doc = {"images": [{"id": int(i) * 7 + 3} for i in range(n)],
           "categories": [{"id": cid, "name": f"c{cid}"} for cid in cat_ids],
           "annotations": [{"id": k, "image_id": int(img_of[k]) * 7 + 3,
                            "category_id": cat_ids[cat_of[k]], "iscrowd": 0}
                           for k in range(boxes)]}
    path = tmp_path / "big.json"
    path.write_text(json.dumps(doc))
    expected = np.zeros((n, c), np.int64)
    for i, j in zip(img_of, cat_of):
        expected[i, j] += 1
    ls = jio.read_coco(path)
    np.testing.assert_array_equal(ls.counts, expected)
    assert ls.counts[-50:].sum() == 0 and ls.image_ids[-1] == str((n - 1) * 7 + 3)


def _coco_error(tmp_path, mutate):
    counts = _counts(4)
    path = write_coco(tmp_path / "bad.json", counts, NAMES, _ids(len(counts)), extra=mutate)
    with pytest.raises(jio.LabelFormatError) as info:
        jio.load(path)
    assert str(path) in str(info.value)
    return info.value


def test_coco_dangling_category_id(tmp_path):
    def mutate(doc):
        doc["annotations"][5]["category_id"] = 999

    err = _coco_error(tmp_path, mutate)
    assert isinstance(err, ValueError)
    assert "annotations[5]" in str(err) and "999" in str(err) and "category_id" in str(err)
    assert err.where.startswith("annotations[5]")


def test_coco_dangling_image_id(tmp_path):
    def mutate(doc):
        doc["annotations"][2]["image_id"] = 12345

    err = _coco_error(tmp_path, mutate)
    assert "annotations[2]" in str(err) and "12345" in str(err)


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d.pop("annotations"), "missing key 'annotations'"),
    (lambda d: d["images"].append(dict(d["images"][0])), "duplicate image id"),
    (lambda d: d["categories"].append({"id": 1, "name": "again"}), "duplicate category id"),
    (lambda d: d["annotations"][0].update(iscrowd=2), "'iscrowd' must be 0 or 1"),
    (lambda d: d["annotations"][1].pop("category_id"), "missing 'category_id'"),
    (lambda d: d["images"][4].update(id=1.5), "images[4]"),
    (lambda d: d["annotations"].__setitem__(0, 7), "expected an object"),
])
def test_coco_malformed_records(tmp_path, mutate, needle):
    assert needle in str(_coco_error(tmp_path, mutate))


def test_coco_malformed_json_names_the_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [\n  {"id": 1},\n  {"id": 2,,}\n]}')
    with pytest.raises(jio.LabelFormatError, match=r"broken\.json, line 3 column \d+: "
                                                   r"malformed JSON"):
        jio.read_coco(path)


# ------------------------------------------------------------------------------------------
# YOLO specifics


@pytest.mark.parametrize("style", ["yaml-list", "yaml-block-list", "yaml-dict",
                                   "yaml-flow-dict", "classes.txt"])
def test_yolo_class_names(tmp_path, style):
    counts = _counts(5)
    root = write_yolo(tmp_path / "ds", counts, NAMES, _ids(len(counts)), names_style=style)
    _check(jio.load(root), counts, NAMES, _ids(len(counts)), "yolo")


def test_yolo_without_names_and_with_subfolders_and_images(tmp_path):
    counts = _counts(6)
    ids = _ids(len(counts))
    root = write_yolo(tmp_path / "ds", counts, NAMES, ids, names_style="none")
    # Move half the files to labels/val: ids become relative paths.
    val = root / "labels" / "val"
    val.mkdir()
    for image_id in ids[6:]:
        (root / "labels" / f"{image_id}.txt").rename(val / f"{image_id}.txt")
    # An image without a label file is a background image: an empty row.
    (root / "images").mkdir()
    (root / "images" / "zz_background.jpg").write_bytes(b"")
    (root / "images" / "img0000.jpg").write_bytes(b"")
    ls = jio.read_yolo(root)
    expected_ids = sorted(ids[:6] + [f"val/{i}" for i in ids[6:]] + ["zz_background"])
    assert ls.image_ids == expected_ids
    assert ls.class_names == ["0", "1", "2", "3"]
    order = [*range(6), *range(6, len(ids))]
    np.testing.assert_array_equal(ls.counts[:-1], counts[order])
    assert ls.counts[-1].sum() == 0


def test_yolo_empty_label_file_is_an_empty_row(tmp_path):
    counts = np.zeros((3, 4), np.int32)
    counts[1, 2] = 2
    ls = jio.read_yolo(write_yolo(tmp_path / "ds", counts, NAMES, _ids(3)))
    np.testing.assert_array_equal(ls.counts, counts)


@pytest.mark.parametrize("line, needle", [
    ("x 0.5 0.5 0.1 0.1", "class id 'x' is not a non-negative integer"),
    ("-1 0.5 0.5 0.1 0.1", "class id '-1'"),
    ("0 0.5 0.5 0.1", "expected 'class cx cy w h'"),
    ("1 0.5 abc 0.1 0.1", "coordinate 'abc' is not a finite number"),
    ("1 0.5 nan 0.1 0.1", "coordinate 'nan'"),
    ("7 0.5 0.5 0.1 0.1", "class id 7 is out of range"),
])
def test_yolo_malformed_lines(tmp_path, line, needle):
    counts = _counts(7)
    root = write_yolo(tmp_path / "ds", counts, NAMES, _ids(len(counts)))
    bad = root / "labels" / "img0002.txt"
    bad.write_text("0 0.5 0.5 0.2 0.2\n\n" + line + "\n")
    with pytest.raises(jio.LabelFormatError) as info:
        jio.load(root)
    assert needle in str(info.value)
    assert f"{bad}, line 3" in str(info.value)


def test_yolo_malformed_data_yaml(tmp_path):
    root = write_yolo(tmp_path / "ds", _counts(), NAMES, _ids(12), names_style="none")
    (root / "data.yaml").write_text("nc: 2\nnames: [a, b\n")
    with pytest.raises(jio.LabelFormatError, match=r"data\.yaml, line 3: malformed YAML"):
        jio.read_yolo(root)
    (root / "data.yaml").write_text("names: [a, [b, c]]\n")
    with pytest.raises(jio.LabelFormatError, match=r"names\[1\]: a class name must be"):
        jio.read_yolo(root)
    (root / "data.yaml").write_text("names:\n  0: a\n  2: b\n")
    with pytest.raises(jio.LabelFormatError, match="without gaps"):
        jio.read_yolo(root)


# ------------------------------------------------------------------------------------------
# VOC specifics, safe XML


def test_voc_difficult_excluded_by_default(tmp_path):
    counts = _counts(8)
    root = write_voc(tmp_path / "VOC", counts, NAMES, _ids(len(counts)),
                     difficult=[(0, 0), (3, 3), (3, 3)])
    order = np.argsort(NAMES)
    np.testing.assert_array_equal(jio.read_voc(root).counts, counts[:, order])
    with_diff = counts.copy()
    with_diff[0, 0] += 1
    with_diff[3, 3] += 2
    np.testing.assert_array_equal(jio.read_voc(root, include_difficult=True).counts,
                                  with_diff[:, order])


def test_voc_class_names_and_split(tmp_path):
    counts = _counts(9)
    ids = _ids(len(counts))
    root = write_voc(tmp_path / "VOC", counts, NAMES, ids)
    ls = jio.read_voc(root, class_names=NAMES)
    np.testing.assert_array_equal(ls.counts, counts)
    main = root / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "val.txt").write_text(f"{ids[4]}\n{ids[1]}\n")
    ls = jio.read_voc(root, class_names=NAMES, split="val")
    assert ls.image_ids == [ids[4], ids[1]]
    np.testing.assert_array_equal(ls.counts, counts[[4, 1]])
    with pytest.raises(jio.LabelFormatError, match="not in class_names"):
        jio.read_voc(root, class_names=NAMES[:2])


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<annotation><object><name>&lol9;</name></object></annotation>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<annotation><object><name>&xxe;</name></object></annotation>
"""

EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE annotation SYSTEM "http://example.invalid/evil.dtd">
<annotation><object><name>cat</name></object></annotation>
"""


@pytest.mark.parametrize("payload", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD],
                         ids=["billion-laughs", "external-entity", "external-dtd"])
def test_voc_refuses_unsafe_xml(tmp_path, payload):
    root = write_voc(tmp_path / "VOC", _counts(), NAMES, _ids(12))
    bomb = root / "Annotations" / "img0007.xml"
    bomb.write_text(payload)
    with pytest.raises(jio.LabelFormatError) as info:
        jio.load(root)
    assert str(bomb) in str(info.value)
    assert "not allowed" in str(info.value) or "unsafe XML" in str(info.value)


def test_xml_parser_reads_plain_files():
    from jbalance._src.io import voc

    tree = voc.parse_xml(b"<a><object><name>x &amp; y</name></object><b/></a>", "f.xml")
    assert tree.tag == "a" and tree.findtext("object/name") == "x & y"


def test_voc_malformed_xml_names_line(tmp_path):
    root = write_voc(tmp_path / "VOC", _counts(), NAMES, _ids(12))
    bad = root / "Annotations" / "img0001.xml"
    bad.write_text("<annotation>\n<object><name>cat</name>\n</annotation>\n")
    with pytest.raises(jio.LabelFormatError, match=rf"{bad.name}, line 3 column \d+: "
                                                   r"malformed XML"):
        jio.load(root)


@pytest.mark.parametrize("body, needle", [
    ("<object><pose>x</pose></object>", "<object> has no <name>"),
    ("<object><name>cat</name><difficult>maybe</difficult></object>", "<difficult> must be"),
])
def test_voc_malformed_objects(tmp_path, body, needle):
    root = write_voc(tmp_path / "VOC", _counts(), NAMES, _ids(12))
    (root / "Annotations" / "img0001.xml").write_text(f"<annotation>{body}</annotation>")
    with pytest.raises(jio.LabelFormatError, match=needle):
        jio.load(root)


# ------------------------------------------------------------------------------------------
# CSV and NumPy specifics


def test_csv_multi_hot_variants(tmp_path):
    path = tmp_path / "tags.tsv"
    path.write_text("file\tsky\tsea\n a.jpg \t1.0\tTrue\nb.jpg\t0\tfalse\n\n")
    ls = jio.load(path)
    assert ls.image_ids == ["a.jpg", "b.jpg"] and ls.class_names == ["sky", "sea"]
    np.testing.assert_array_equal(ls.counts, [[1, 1], [0, 0]])
    path = tmp_path / "ids_last.csv"
    path.write_text("a,b,image_id\n1,2,x\n0,3,y\n")
    ls = jio.load(path)
    assert ls.image_ids == ["x", "y"] and ls.class_names == ["a", "b"]
    np.testing.assert_array_equal(ls.counts, [[1, 2], [0, 3]])


@pytest.mark.parametrize("text, needle", [
    ("image_id,a,b\nx,1,0\ny,0.5,1\n", "line 3: column 'a': '0.5' is not a whole number"),
    ("image_id,a,b\nx,1,0\ny,1,-2\n", "line 3: column 'b': count -2 is negative"),
    ("image_id,a,b\nx,1,0\ny,1,lots\n", "line 3: column 'b': 'lots' is not a whole"),
    ("image_id,a,b\nx,1,0\ny,1\n", "line 3: 2 fields, header has 3"),
    ("image_id,a,b\nx,1,0\nx,1,1\n", "line 3: duplicate image id 'x' (first on line 2)"),
    ("image_id,a,a\nx,1,0\n", "line 1: duplicate column 'a'"),
    ("", "line 1: empty file"),
    ("image_id\nx\n", "line 1: no class columns"),
])
def test_csv_malformed(tmp_path, text, needle):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(jio.LabelFormatError) as info:
        jio.read_csv(path)
    assert f"{path}, {needle}" in str(info.value)


def test_numpy_malformed(tmp_path):
    cases = {
        "neg.npy": np.array([[1, -1]]),
        "frac.npy": np.array([[1.5, 0.0]]),
        "rank.npy": np.zeros((2, 2, 2), np.int32),
        "obj.npy": np.array([[1, None]], dtype=object),
    }
    needles = {"neg.npy": "counts[0, 1]: count -1 is negative",
               "frac.npy": "counts[0, 0]: count 1.5 is not a whole number",
               "rank.npy": "must be 2-D", "obj.npy": "without pickle"}
    for name, arr in cases.items():
        np.save(tmp_path / name, arr, allow_pickle=True)
        with pytest.raises(jio.LabelFormatError) as info:
            jio.load(tmp_path / name)
        assert needles[name] in str(info.value) and name in str(info.value)
    np.savez(tmp_path / "names.npz", counts=np.ones((2, 3)), class_names=np.array(["a", "b"]))
    with pytest.raises(jio.LabelFormatError, match="class_names: expected 3 entries, got 2"):
        jio.load(tmp_path / "names.npz")
    (tmp_path / "fake.npy").write_text("not numpy")
    with pytest.raises(jio.LabelFormatError, match="fake.npy"):
        jio.load(tmp_path / "fake.npy")


def test_load_dispatch_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        jio.load(tmp_path / "missing.json")
    with pytest.raises(FileNotFoundError):
        jio.read_voc(tmp_path / "missing")
    (tmp_path / "x.parquet").write_text("")
    with pytest.raises(jio.LabelFormatError, match="unknown label file type '.parquet'"):
        jio.load(tmp_path / "x.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(jio.LabelFormatError, match="cannot tell the label format"):
        jio.load(tmp_path / "empty")
    with pytest.raises(ValueError, match="`format` must be one of"):
        jio.load(tmp_path / "x.parquet", format="parquet")
    np.save(tmp_path / "c.npy", np.ones((2, 2), np.int32))
    assert jio.load(tmp_path / "c.npy", format="numpy").counts.sum() == 4


def test_from_counts_validation():
    with pytest.raises(jio.LabelFormatError, match="2-D"):
        jio.from_counts([1, 2])
    with pytest.raises(jio.LabelFormatError, match="duplicate entry 'a'"):
        jio.from_counts([[1, 2]], class_names=["a", "a"])
    with pytest.raises(jio.LabelFormatError, match="finite"):
        jio.from_counts([[np.inf, 2]])


# ------------------------------------------------------------------------------------------
# Writers


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_write_repeats_round_trip(tmp_path, suffix):
    ids = ["a", "b,with comma", "c"]
    path = jio.write_repeats(tmp_path / f"plan{suffix}", np.array([0, 3, 1], np.int32),
                             image_ids=ids)
    if suffix == ".csv":
        rows = list(csv.reader(path.read_text().splitlines()))
        assert rows == [["image_id", "repeats"], ["a", "0"], ["b,with comma", "3"], ["c", "1"]]
    else:
        assert json.loads(path.read_text()) == {"a": 0, "b,with comma": 3, "c": 1}
    back_ids, back = jio.read_repeats(path)
    assert back_ids == ids and back.tolist() == [0, 3, 1]


def test_write_repeats_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="whole numbers"):
        jio.write_repeats(tmp_path / "p.csv", [0.5, 1.0])
    with pytest.raises(ValueError, match=">= 0"):
        jio.write_repeats(tmp_path / "p.csv", [-1, 1])
    with pytest.raises(ValueError, match="must match"):
        jio.write_repeats(tmp_path / "p.csv", [1, 1], image_ids=["a"])
    (tmp_path / "bad.json").write_text('{"a": -1}')
    with pytest.raises(jio.LabelFormatError, match="non-negative integer"):
        jio.read_repeats(tmp_path / "bad.json")


def test_write_indices_formats(tmp_path):
    ids = ["x", "y", "z"]
    idx = np.repeat(np.arange(3), [2, 0, 1])
    txt = jio.write_indices(tmp_path / "i.txt", idx, image_ids=ids)
    assert txt.read_text() == "x\nx\nz\n"
    as_json = jio.write_indices(tmp_path / "i.json", idx, image_ids=ids)
    assert json.loads(as_json.read_text()) == ["x", "x", "z"]
    text = jio.write_indices(tmp_path / "i.csv", idx, image_ids=ids).read_text()
    assert list(csv.reader(text.splitlines())) == \
        [["index", "image_id"], ["0", "x"], ["0", "x"], ["2", "z"]]
    np.testing.assert_array_equal(np.load(jio.write_indices(tmp_path / "i.npy", idx)), idx)
    with pytest.raises(ValueError, match="only 3 image ids"):
        jio.write_indices(tmp_path / "i.txt", [5], image_ids=ids)


def test_public_names_and_doctests():
    assert set(jio.__all__) <= set(dir(jio))
    for name in ("load", "read_coco", "read_yolo", "read_voc", "read_csv", "LabelSet",
                 "LabelFormatError", "write_repeats", "write_indices"):
        assert name in jio.__all__
    assert issubclass(jio.LabelFormatError, ValueError)
    attempted = 0
    for name in ("common", "coco", "yolo", "voc", "csv", "numpy", "detect", "writers"):
        module = importlib.import_module(f"jbalance._src.io.{name}")
        results = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert results.failed == 0, name
        attempted += results.attempted
    assert attempted > 20
    for name in jio.__all__:  # every public function shows an example
        obj = getattr(jio, name)
        if callable(obj) and not isinstance(obj, type):
            assert ">>>" in (obj.__doc__ or ""), name
