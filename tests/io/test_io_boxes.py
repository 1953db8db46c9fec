"""Boxes, image sizes and image paths from the readers (`load(..., boxes=True)`).

Each fixture is written here from known boxes by code that follows the format's
specification; the expected objects come from that list, not from the readers. Image sizes
are checked against files written by Pillow (a peer library) where it is installed, and
against hand-built headers otherwise.
"""

import json
import pathlib
import struct

import numpy as np
import pytest

import jbalance.io as jio
from jbalance._src.boxes import Objects

NAMES = ["cat", "dog", "zebra"]


def _bincount(objects, n, c):
    counts = np.zeros((n, c), np.int64)
    np.add.at(counts, (objects.image_index, objects.class_index), 1)
    return counts


def _check_objects(ls, expected, box_format):
    """``expected``: list of (image_index, class_index, box) in file order."""
    obj = ls.objects
    assert isinstance(obj, Objects) and obj.box_format == box_format
    assert obj.image_index.dtype == np.int32 and obj.class_index.dtype == np.int32
    assert obj.boxes.dtype == np.float32 and obj.boxes.shape == (len(expected), 4)
    np.testing.assert_array_equal(obj.image_index, [e[0] for e in expected])
    np.testing.assert_array_equal(obj.class_index, [e[1] for e in expected])
    np.testing.assert_allclose(obj.boxes, np.asarray([e[2] for e in expected],
                                                     np.float64).reshape(-1, 4), rtol=1e-6)
    np.testing.assert_array_equal(_bincount(obj, ls.num_images, ls.num_classes), ls.counts)


def _png(h, w):
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0" * 4


def _jpeg(h, w):
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    exif = b"\xff\xe1" + struct.pack(">H", 2 + 300) + b"\xff" * 300  # a segment to skip
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, h, w, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + exif + sof + b"\xff\xd9"


# ------------------------------------------------------------------------------------------
# COCO


def _coco_doc(rng):
    images = [{"id": 10 + i, "file_name": f"{i:04d}.jpg", "height": 300 + i, "width": 400 + i}
              for i in range(6)]
    cats = [{"id": 3, "name": "cat"}, {"id": 1, "name": "dog"}, {"id": 8, "name": "zebra"}]
    anns, expected, expected_crowd = [], [], []
    for k in range(25):
        i, j = int(rng.integers(0, 5)), int(rng.integers(0, 3))  # image 5 stays empty
        box = [float(v) for v in np.round(rng.uniform(0, 200, 4), 2)]
        crowd = int(k % 7 == 3)
        anns.append({"id": k + 1, "image_id": 10 + i, "category_id": cats[j]["id"],
                     "bbox": box, "iscrowd": crowd, "area": box[2] * box[3]})
        expected_crowd.append((i, j, box))
        if not crowd:
            expected.append((i, j, box))
    return {"images": images, "annotations": anns, "categories": cats}, expected, \
        expected_crowd


def test_coco_boxes_sizes_and_paths(tmp_path):
    doc, expected, expected_crowd = _coco_doc(np.random.default_rng(0))
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(doc))
    ls = jio.load(path, boxes=True)
    _check_objects(ls, expected, "xywh")
    np.testing.assert_array_equal(ls.counts, jio.read_coco(path).counts)
    assert ls.image_sizes.dtype == np.int32
    np.testing.assert_array_equal(ls.image_sizes, [[300 + i, 400 + i] for i in range(6)])
    assert ls.image_paths == tuple(f"{i:04d}.jpg" for i in range(6))
    _check_objects(jio.read_coco(path, boxes=True, include_crowd=True), expected_crowd, "xywh")
    rooted = jio.read_coco(path, image_root=tmp_path / "train2017")
    assert rooted.image_paths[2] == str(tmp_path / "train2017" / "0002.jpg")
    assert jio.read_coco(path).objects is None  # boxes only on request


def test_coco_boxes_errors_and_missing_sizes(tmp_path):
    doc, _, _ = _coco_doc(np.random.default_rng(1))
    path = tmp_path / "a.json"
    del doc["images"][2]["height"]
    path.write_text(json.dumps(doc))
    ls = jio.read_coco(path, boxes=True)
    assert ls.image_sizes is None and ls.objects is not None
    for bad, needle in (([1, 2, 3], "'bbox' must be"), ([1, 2, -3, 4], "width, height >= 0"),
                        ("x", "'bbox' must be"), (None, "'bbox' must be")):
        doc["annotations"][4]["bbox"] = bad
        doc["annotations"][4]["iscrowd"] = 0
        path.write_text(json.dumps(doc))
        with pytest.raises(jio.LabelFormatError, match=r"annotations\[4\] \(id 5\)") as info:
            jio.read_coco(path, boxes=True)
        assert needle in str(info.value)
        jio.read_coco(path)  # counts alone do not need boxes


# ------------------------------------------------------------------------------------------
# YOLO


def _write_yolo(root, rng, *, images=None, flat=False):
    labels = root if flat else root / "labels"
    labels.mkdir(parents=True, exist_ok=True)
    if not flat:
        (root / "data.yaml").write_text(
            "path: .\ntrain: images\nval: images\nnames:\n  0: cat\n  1: dog\n  2: zebra\n")
    else:
        (root / "classes.txt").write_text("cat\ndog\nzebra\n")
    ids = ["a", "b", "c", "d"]
    expected = []
    for i, image_id in enumerate(ids):
        lines = []
        for _ in range(int(rng.integers(0, 4))):
            j = int(rng.integers(0, 3))
            box = [float(v) for v in np.round(rng.uniform(0.05, 0.95, 4), 4)]
            lines.append(f"{j} " + " ".join(f"{v:.4f}" for v in box))
            expected.append((i, j, box))
        (labels / f"{image_id}.txt").write_text("\n".join(lines) + "\n")
    if images:
        folder = root if flat else root / "images"
        folder.mkdir(exist_ok=True)
        for image_id, (suffix, data) in zip(ids, images):
            (folder / f"{image_id}{suffix}").write_bytes(data)
    return ids, expected


def test_yolo_boxes_without_images(tmp_path):
    ids, expected = _write_yolo(tmp_path / "ds", np.random.default_rng(2))
    ls = jio.load(tmp_path / "ds", boxes=True)
    assert ls.image_ids == ids
    _check_objects(ls, expected, "cxcywhn")
    assert ls.image_sizes is None and ls.image_paths is None


def test_yolo_boxes_with_image_headers_and_background_images(tmp_path):
    root = tmp_path / "ds"
    images = [(".png", _png(480, 640)), (".jpg", _jpeg(375, 500)),
              (".jpeg", _jpeg(10, 20)), (".png", _png(1, 2))]
    ids, expected = _write_yolo(root, np.random.default_rng(3), images=images)
    (root / "images" / "0_background.png").write_bytes(_png(7, 9))  # sorts first
    ls = jio.read_yolo(root / "data.yaml", boxes=True)  # via the data.yaml
    assert ls.image_ids == ["0_background", *ids]
    # Rows moved by one: the objects follow their images.
    _check_objects(ls, [(i + 1, j, b) for i, j, b in expected], "cxcywhn")
    np.testing.assert_array_equal(ls.image_sizes, [[7, 9], [480, 640], [375, 500], [10, 20],
                                                   [1, 2]])
    assert ls.image_paths == tuple(str(root / "images" / f"{i}{s}") for i, s in
                                   zip(["0_background", *ids], [".png"] + [s for s, _ in
                                                                           images]))
    out = jio.write_image_list(tmp_path / "train.txt", ls, np.array([2, 2, 0]))
    assert out.read_text().splitlines() == [ls.image_paths[2]] * 2 + [ls.image_paths[0]]


def test_yolo_flat_darknet_folder_and_unreadable_header(tmp_path):
    root = tmp_path / "flat"
    images = [(".jpg", _jpeg(5, 6)), (".png", _png(3, 4)), (".jpg", b"\xff\xd8junk"),
              (".png", _png(8, 8))]
    ids, expected = _write_yolo(root, np.random.default_rng(4), images=images, flat=True)
    ls = jio.read_yolo(root, boxes=True)
    _check_objects(ls, expected, "cxcywhn")
    assert ls.image_paths == tuple(str(root / f"{i}{s}") for i, (s, _) in zip(ids, images))
    assert ls.image_sizes is None  # one header unreadable: no partial sizes


def test_yolo_segments_and_pose_lines(tmp_path):
    root = tmp_path / "seg"
    (root / "labels").mkdir(parents=True)
    (root / "data.yaml").write_text("names: [a, b]\n")
    (root / "labels" / "x.txt").write_text("1 0.1 0.2 0.5 0.2 0.3 0.6\n0 0.5 0.5 0.2 0.2\n")
    ls = jio.read_yolo(root, boxes=True)
    # Polygon extent x in [0.1, 0.5], y in [0.2, 0.6] -> centre (0.3, 0.4), size (0.4, 0.4).
    np.testing.assert_allclose(ls.objects.boxes, [[0.3, 0.4, 0.4, 0.4],
                                                  [0.5, 0.5, 0.2, 0.2]], rtol=1e-6)
    (root / "data.yaml").write_text("names: [a, b]\nkpt_shape: [1, 2]\n")
    (root / "labels" / "x.txt").write_text("1 0.5 0.5 0.2 0.4 0.1 0.2\n")
    np.testing.assert_allclose(jio.read_yolo(root, boxes=True).objects.boxes,
                               [[0.5, 0.5, 0.2, 0.4]], rtol=1e-6)


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "BMP", "GIF", "WEBP"])
def test_image_size_matches_pillow(tmp_path, kind):
    image_mod = pytest.importorskip("PIL.Image")
    p = tmp_path / f"x.{kind.lower()}"
    image_mod.new("RGB", (37, 21)).save(p, kind)
    with image_mod.open(p) as im:
        w, h = im.size
    assert jio.image_size(p) == (h, w) == (21, 37)
    if kind == "WEBP":
        image_mod.new("RGB", (37, 21)).save(p, kind, lossless=True)
        assert jio.image_size(p) == (21, 37)


def test_image_size_refuses_junk(tmp_path):
    for i, data in enumerate([b"", b"\xff\xd8", b"\xff\xd8\xff\xe0\x00", b"GIF89a\0\0\0\0",
                              _png(0, 5), b"\xff\xd8" + b"\xff\xe1\xff\xff" * 3, b"RIFF"]):
        p = tmp_path / f"{i}.img"
        p.write_bytes(data)
        assert jio.image_size(p) is None
    assert jio.image_size(tmp_path / "missing.png") is None


# ------------------------------------------------------------------------------------------
# VOC


def test_voc_boxes_difficult_sizes_and_paths(tmp_path):
    ann = tmp_path / "VOC2007" / "Annotations"
    ann.mkdir(parents=True)
    rng = np.random.default_rng(5)
    expected, expected_all = [], []
    for i in range(4):
        objs = []
        for _ in range(int(rng.integers(1, 4))):
            j = int(rng.integers(0, 3))
            box = [float(v) for v in rng.integers(1, 300, 4)]
            diff = int(rng.integers(0, 3) == 0)
            objs.append(f"<object><name>{NAMES[j]}</name><difficult>{diff}</difficult>"
                        f"<bndbox><xmin>{box[0]:g}</xmin><ymin>{box[1]:g}</ymin>"
                        f"<xmax>{box[2]:g}</xmax><ymax>{box[3]:g}</ymax></bndbox></object>")
            expected_all.append((i, j, box))
            if not diff:
                expected.append((i, j, box))
        (ann / f"{i:06d}.xml").write_text(
            f"<annotation><filename>{i:06d}.png</filename><size><width>{500 + i}</width>"
            f"<height>{300 + i}</height><depth>3</depth></size>{''.join(objs)}</annotation>")
    ls = jio.load(tmp_path / "VOC2007", boxes=True, class_names=NAMES)
    _check_objects(ls, expected, "xyxy")
    np.testing.assert_array_equal(ls.image_sizes, [[300 + i, 500 + i] for i in range(4)])
    assert ls.image_paths == tuple(str(tmp_path / "VOC2007" / "JPEGImages" / f"{i:06d}.png")
                                   for i in range(4))
    _check_objects(jio.read_voc(tmp_path / "VOC2007", boxes=True, include_difficult=True,
                                class_names=NAMES), expected_all, "xyxy")
    (ann / "000001.xml").write_text("<annotation><object><name>cat</name></object>"
                                    "</annotation>")
    with pytest.raises(jio.LabelFormatError, match=r"000001\.xml, object 1 \(cat\): "
                                                   r"<object> has no <bndbox>"):
        jio.read_voc(tmp_path / "VOC2007", boxes=True)
    assert jio.read_voc(tmp_path / "VOC2007").counts.sum() > 0


def test_boxes_only_for_formats_with_boxes(tmp_path):
    np.save(tmp_path / "c.npy", np.ones((2, 2), np.int32))
    with pytest.raises(ValueError, match="hold no boxes"):
        jio.load(tmp_path / "c.npy", boxes=True)


def test_write_image_list_needs_paths(tmp_path):
    ls = jio.from_counts([[1], [2]])
    with pytest.raises(ValueError, match="image_paths` is None"):
        jio.write_image_list(tmp_path / "t.txt", ls, [0])
    ls = jio.from_counts([[1], [2]], image_paths=["a b/ñ.jpg", "c.jpg"])
    out = jio.write_image_list(tmp_path / "t.txt", ls, np.arange(2))
    assert out.read_bytes().decode("utf-8") == "a b/ñ.jpg\nc.jpg\n"
    with pytest.raises(ValueError, match="only 2 image ids"):
        jio.write_image_list(tmp_path / "t.txt", ls, [2])


# ------------------------------------------------------------------------------------------
# data.yaml as Ultralytics writes it


YOLOV5_COCO128 = """\
# YOLOv5 🚀 by Ultralytics, AGPL-3.0 license
# Example usage: python train.py --data coco128.yaml
path: ../datasets/coco128  # dataset root dir
train: images/train2017  # train images (relative to 'path') 128 images
val: images/train2017  # val images (relative to 'path') 128 images
test:  # test images (optional)

# Classes
names:
  0: person
  1: bicycle
  2: 'traffic light'
  3: "fire hydrant"

# Download script/URL (optional)
download: |
  from utils.general import download
  download(['https://example.invalid/coco128.zip'])
"""


@pytest.mark.parametrize("text", [
    YOLOV5_COCO128,
    "train: ../train/images\nval: ../valid/images\nnc: 4\n"
    "names: ['person', 'bicycle', 'traffic light', 'fire hydrant']\n",
    "names: {0: person, 1: bicycle, 2: traffic light, 3: fire hydrant}\n",
    "names:\n- person\n- bicycle\n- traffic light\n- fire hydrant\nnc: 4\n",
    "names: [person,\n  bicycle,\n  traffic light, fire hydrant]\n",
])
def test_yolo_data_yaml_forms(tmp_path, text):
    root = tmp_path / "ds"
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "x.txt").write_text("3 0.5 0.5 0.1 0.1\n")
    (root / "data.yaml").write_text(text, encoding="utf-8")
    ls = jio.load(root)
    assert ls.class_names == ["person", "bicycle", "traffic light", "fire hydrant"]
    assert ls.counts.tolist() == [[0, 0, 0, 1]]


def test_yolo_data_yaml_path_key_names_the_root(tmp_path):
    root = tmp_path / "datasets" / "mine"
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "x.txt").write_text("1 0.5 0.5 0.1 0.1\n")
    cfg = tmp_path / "configs" / "mine.yaml"
    cfg.parent.mkdir()
    cfg.write_text("path: ../datasets/mine\ntrain: images\nnames: [a, b]\n")
    ls = jio.load(cfg)
    assert ls.class_names == ["a", "b"] and ls.counts.tolist() == [[0, 1]]


def test_coco_fast_parser_matches_the_standard_one(tmp_path, monkeypatch):
    """With msgspec installed (the ``fast`` extra) the reader must give the same result and
    the same errors as with ``json`` alone."""
    pytest.importorskip("msgspec")
    from jbalance._src.io import coco

    doc, _, _ = _coco_doc(np.random.default_rng(7))
    doc["annotations"][0]["segmentation"] = [[1, 2, 3, 4, 5, 6]]  # skipped by the fast path
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    fast = jio.read_coco(path, boxes=True)
    assert coco._fast_decoder() is not None
    monkeypatch.setattr(coco, "_fast_decoder", lambda: None)
    slow = jio.read_coco(path, boxes=True)
    for a, b in zip(fast, slow):
        if isinstance(a, np.ndarray) or isinstance(a, tuple) and a and \
                isinstance(a[0], np.ndarray):
            for x, y in zip(np.atleast_1d(a) if isinstance(a, np.ndarray) else a, b):
                np.testing.assert_array_equal(x, y)
        else:
            assert a == b
    monkeypatch.undo()
    for mutate in (lambda d: d["annotations"][3].update(category_id=999),
                   lambda d: d["annotations"][2].update(iscrowd=1.0),
                   lambda d: d["images"].append({"id": 10}),
                   lambda d: d["annotations"][1].pop("image_id")):
        bad = json.loads(json.dumps(doc))
        mutate(bad)
        path.write_text(json.dumps(bad))
        with pytest.raises(jio.LabelFormatError) as fast_err:
            jio.read_coco(path, boxes=True)
        monkeypatch.setattr(coco, "_fast_decoder", lambda: None)
        with pytest.raises(jio.LabelFormatError) as slow_err:
            jio.read_coco(path, boxes=True)
        monkeypatch.undo()
        assert str(fast_err.value) == str(slow_err.value)


@pytest.mark.parametrize("value", [10**400, -5, 0, 2.5, "480", True, float("nan")])
def test_coco_bad_image_sizes(tmp_path, value):
    doc, _, _ = _coco_doc(np.random.default_rng(8))
    doc["images"][3]["height"] = value
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(jio.LabelFormatError, match=r"images\[3\]: height and width must be"):
        jio.read_coco(path, boxes=True)
    doc["images"][3]["height"] = 480
    doc["annotations"][2]["bbox"] = [1, 2, 10**400, 4]
    path.write_text(json.dumps(doc))
    with pytest.raises(jio.LabelFormatError, match=r"annotations\[2\]"):
        jio.read_coco(path, boxes=True, include_crowd=True)


# ------------------------------------------------------------------------------------------
# The bundled fixtures (tests/data/io_fixtures) against values written out by hand.

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "data" / "io_fixtures"


def test_bundled_fixtures_against_hand_written_reference():
    coco = jio.load(FIXTURES / "coco" / "instances.json", boxes=True)
    assert coco.image_ids == ["42", "7", "9"] and coco.class_names == ["dog", "person", "car"]
    assert coco.counts.tolist() == [[1, 2, 0], [0, 0, 1], [0, 0, 0]]  # id 3 is a crowd
    _check_objects(coco, [(0, 1, [10.5, 20.0, 100.0, 200.0]), (0, 0, [300.0, 100.25, 50, 40]),
                          (1, 2, [12, 13, 14, 15]), (0, 1, [400.0, 300.0, 20.5, 30.5])], "xywh")
    assert coco.image_sizes.tolist() == [[480, 640], [375, 500], [427, 640]]
    assert coco.image_paths == ("000042.jpg", "000007.jpg", "000009.jpg")

    yolo = jio.load(FIXTURES / "yolo", boxes=True)
    assert yolo.image_ids == ["train/a", "train/b", "train/c", "train/d"]
    assert yolo.class_names == ["person", "dog", "car"]
    assert yolo.counts.tolist() == [[1, 1, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]]
    _check_objects(yolo, [(0, 0, [0.5, 0.5, 0.25, 0.5]), (0, 1, [0.125, 0.25, 0.0625, 0.125]),
                          (1, 2, [0.3, 0.4, 0.4, 0.4])], "cxcywhn")  # polygon -> extent
    assert yolo.image_sizes.tolist() == [[8, 16], [20, 12], [7, 5], [3, 9]]  # (h, w)
    images = FIXTURES / "yolo" / "images" / "train"
    assert yolo.image_paths == tuple(str(images / n) for n in ("a.png", "b.jpg", "c.png",
                                                              "d.png"))

    voc = jio.load(FIXTURES / "voc", boxes=True)
    assert voc.image_ids == ["000005", "000007"] and voc.class_names == ["car", "chair",
                                                                         "person"]
    assert voc.counts.tolist() == [[0, 1, 1], [1, 0, 0]]  # one chair is difficult
    _check_objects(voc, [(0, 1, [263, 211, 324, 339]), (0, 2, [48, 240, 195, 371]),
                         (1, 0, [141, 50, 500, 330])], "xyxy")
    assert voc.image_sizes.tolist() == [[375, 500], [333, 500]]
    assert voc.image_paths[1] == str(FIXTURES / "voc" / "JPEGImages" / "000007.jpg")
