"""Segmentation readers: PNG label maps (VOC, Cityscapes, plain folders) and COCO masks.

References are independent of the reader: hand-counted pixels, `np.bincount` and
`scipy.ndimage.label` on the arrays the test wrote, and pycocotools' own ``decode``/``area``
for COCO polygons and RLE. The bundled fixtures (tests/data/io_fixtures/masks) are written by
`write_fixtures` below: ``python tests/io/test_io_masks.py`` rewrites them.
"""

import json
import pathlib
import sys

import numpy as np
import pytest

import jbalance
import jbalance.io as jio
from jbalance._src.io import coco_masks as cm

Image = pytest.importorskip("PIL.Image")
ndimage = pytest.importorskip("scipy.ndimage")

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "data" / "io_fixtures" / "masks"


def voc_palette() -> list[int]:
    """The Pascal VOC colour map (bit-interleaved RGB per index), as VOC's devkit builds it."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def save_palette_png(path: pathlib.Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(ids.astype(np.uint8), mode="P")
    im.putpalette(voc_palette())
    im.save(path)


def save_grey_png(path: pathlib.Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ids).save(path)


def save_rgb(path: pathlib.Path, h: int, w: int, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 127, np.uint8)).save(path, format=fmt)


def column_major_runs(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE: run lengths over the column-major pixels, background first."""
    runs, current, length = [], 0, 0
    for v in mask.T.reshape(-1).tolist():
        if v == current:
            length += 1
        else:
            runs.append(length)
            current, length = v, 1
    return runs + [length]


# --------------------------------------------------------------------------------------------
# The bundled fixtures


def _voc_maps() -> dict[str, np.ndarray]:
    a = np.zeros((12, 16), np.uint8)
    a[1:7, 2:10] = 255          # a void ring of 6*8 - 4*6 = 24 pixels ...
    a[2:6, 3:9] = 15            # ... around a 4x6 person: 24 pixels
    a[8:11, 11:15] = 15         # a second person, 3x4 = 12 pixels, not touching
    b = np.zeros((12, 16), np.uint8)
    b[0:12, 0:4] = 7            # car: 48 pixels
    b[5, 10] = 12               # dog: 1 pixel
    b[6, 11] = 12               # diagonal neighbour: the same region (8-connected)
    b[11, 15] = 255             # 1 void pixel
    return {"2007_000032": a, "2007_000039": b}


def _cityscapes_map() -> np.ndarray:
    m = np.full((8, 16), 7, np.uint8)  # road
    m[0:3] = 23                        # sky: 48 pixels
    m[3:5, 2:6] = 26                   # car: 8 pixels
    m[3:5, 10:12] = 26                 # another car: 4 pixels
    m[7, 15] = 0                       # unlabeled: 1 pixel
    return m


def _coco_doc() -> dict:
    square = [2.0, 2.0, 8.0, 2.0, 8.0, 6.0, 2.0, 6.0]
    triangle = [10.0, 1.0, 15.5, 1.0, 12.5, 7.0]
    crowd = np.zeros((8, 16), np.uint8)
    crowd[4:8, 0:3] = 1
    runs = column_major_runs(crowd)
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 8, "width": 16},
                   {"id": 2, "file_name": "b.jpg", "height": 8, "width": 16}],
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [2, 2, 6, 4],
             "segmentation": [square], "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 1, "bbox": [10, 1, 5.5, 6],
             "segmentation": [triangle], "iscrowd": 0},
            {"id": 12, "image_id": 1, "category_id": 3, "bbox": [0, 4, 3, 4],
             "segmentation": {"counts": runs, "size": [8, 16]}, "iscrowd": 1},
            # compressed RLE of a 2x3 block at rows 1-2, columns 4-6 (pycocotools.mask.encode)
            {"id": 13, "image_id": 2, "category_id": 3, "bbox": [4, 1, 3, 2],
             "segmentation": {"counts": "Q126000W2", "size": [8, 16]}, "iscrowd": 0},
        ]}


def write_fixtures(root: pathlib.Path) -> None:
    """Writes tests/data/io_fixtures/masks (VOC, Cityscapes and COCO-with-masks layouts)."""
    for stem, ids in _voc_maps().items():
        save_palette_png(root / "voc" / "SegmentationClass" / f"{stem}.png", ids)
        save_rgb(root / "voc" / "JPEGImages" / f"{stem}.jpg", *ids.shape, fmt="JPEG")
    split = root / "voc" / "ImageSets" / "Segmentation" / "train.txt"
    split.parent.mkdir(parents=True, exist_ok=True)
    split.write_text("2007_000039\n2007_000032\n")
    city = root / "cityscapes" / "gtFine" / "train" / "aachen"
    stem = "aachen_000000_000019"
    m = _cityscapes_map()
    save_grey_png(city / f"{stem}_gtFine_labelIds.png", m)
    train = np.full_like(m, 255)
    for label_id, train_id in ((7, 0), (23, 10), (26, 13)):
        train[m == label_id] = train_id
    save_grey_png(city / f"{stem}_gtFine_labelTrainIds.png", train)
    save_rgb(city / f"{stem}_gtFine_color.png", *m.shape)  # must be skipped
    save_rgb(root / "cityscapes" / "leftImg8bit" / "train" / "aachen" /
             f"{stem}_leftImg8bit.png", *m.shape)
    (root / "coco").mkdir(parents=True, exist_ok=True)
    (root / "coco" / "instances.json").write_text(json.dumps(_coco_doc(), indent=1) + "\n")


def test_committed_fixtures_are_what_the_script_writes(tmp_path):
    write_fixtures(tmp_path)
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    have = sorted(p.relative_to(FIXTURES) for p in FIXTURES.rglob("*") if p.is_file())
    assert made == have
    for rel in made:
        if rel.suffix in (".png", ".jpg"):  # encoders may differ in bytes, not in pixels
            with Image.open(tmp_path / rel) as x, Image.open(FIXTURES / rel) as y:
                assert x.mode == y.mode and x.size == y.size
                if rel.suffix == ".png":
                    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        else:
            assert (tmp_path / rel).read_bytes() == (FIXTURES / rel).read_bytes()


def test_bundled_voc_fixture_against_hand_counts():
    ls = jio.load(FIXTURES / "voc", masks=True)
    assert ls.format == "masks" and ls.class_names == list(jio_voc_classes())
    assert ls.image_ids == ["2007_000032", "2007_000039"]
    pixels = np.zeros((2, 21), np.int64)
    pixels[0, [0, 15]] = [192 - 24 - 24 - 12, 24 + 12]
    pixels[1, [0, 7, 12]] = [192 - 48 - 2 - 1, 48, 2]
    np.testing.assert_array_equal(ls.pixel_counts, pixels)
    regions = np.zeros((2, 21), np.int32)
    regions[0, [0, 15]] = [1, 2]   # the void ring keeps the background in one piece
    regions[1, [0, 7, 12]] = [1, 1, 1]
    np.testing.assert_array_equal(ls.instance_counts, regions)
    np.testing.assert_array_equal(ls.counts, (pixels > 0).astype(np.int32))
    assert ls.counts.dtype == np.int32 and ls.pixel_counts.dtype == np.int64
    assert ls.instance_counts.dtype == np.int32
    assert ls.image_sizes.tolist() == [[12, 16], [12, 16]]
    root = FIXTURES / "voc"
    assert ls.image_paths == tuple(str(root / "JPEGImages" / f"{i}.jpg") for i in ls.image_ids)
    assert ls.mask_paths == tuple(str(root / "SegmentationClass" / f"{i}.png")
                                  for i in ls.image_ids)
    # the same through the folder itself, and a split in its file's order
    same = jio.read_masks(root / "SegmentationClass")
    np.testing.assert_array_equal(same.pixel_counts, pixels)
    split = jio.read_masks(root, split="train")
    assert split.image_ids == ["2007_000039", "2007_000032"]
    np.testing.assert_array_equal(split.pixel_counts, pixels[::-1])
    # a VOC root stays a detection set without masks=True
    assert jio.detect_format(root) == "masks"  # no Annotations/ in this fixture


def jio_voc_classes():
    from jbalance._src.io.masks import VOC_CLASSES
    return VOC_CLASSES


def test_bundled_cityscapes_fixture():
    ls = jio.load(FIXTURES / "cityscapes", masks=True)
    assert ls.image_ids == ["train/aachen/aachen_000000_000019"]
    assert len(ls.class_names) == 34 and ls.class_names[7] == "road"
    expected = {0: 1, 7: 128 - 48 - 12 - 1, 23: 48, 26: 12}
    assert {c: int(v) for c, v in enumerate(ls.pixel_counts[0]) if v} == expected
    assert {c: int(v) for c, v in enumerate(ls.instance_counts[0]) if v} == \
        {0: 1, 7: 1, 23: 1, 26: 2}
    city = FIXTURES / "cityscapes"
    assert ls.image_paths == (str(city / "leftImg8bit" / "train" / "aachen" /
                                  "aachen_000000_000019_leftImg8bit.png"),)
    assert jio.detect_format(city) == "masks"
    train = jio.read_masks(city, pattern="*_labelTrainIds.png")
    assert train.class_names[:3] == ["0", "1", "2"] and len(train.class_names) == 14
    named = jio.read_masks(city / "gtFine" / "train", pattern="*_labelTrainIds.png",
                           class_names=jio_city_train())
    assert len(named.class_names) == 19
    assert {c: int(v) for c, v in enumerate(named.pixel_counts[0]) if v} == \
        {0: 67, 10: 48, 13: 12}  # the unlabeled pixel is 255: ignored


def jio_city_train():
    from jbalance._src.io.masks import CITYSCAPES_TRAIN_CLASSES
    return CITYSCAPES_TRAIN_CLASSES


def test_bundled_coco_fixture_against_pycocotools():
    mask_utils = pytest.importorskip("pycocotools.mask")
    path = FIXTURES / "coco" / "instances.json"
    ls = jio.load(path, masks=True)
    plain = jio.load(path)
    np.testing.assert_array_equal(ls.counts, plain.counts)  # crowd excluded in both
    np.testing.assert_array_equal(ls.instance_counts, plain.counts)
    assert ls.counts.tolist() == [[2, 0], [0, 1]]
    doc = _coco_doc()
    square, triangle = (mask_utils.decode(mask_utils.frPyObjects(a["segmentation"], 8, 16))
                        .any(axis=2) for a in doc["annotations"][:2])
    rle = doc["annotations"][3]["segmentation"]
    block = mask_utils.decode({"counts": rle["counts"].encode(), "size": rle["size"]})
    assert block.sum() == 6 and block[1:3, 4:7].all()
    assert ls.pixel_counts.tolist() == [[int((square | triangle).sum()), 0], [0, 6]]
    crowd = jio.load(path, masks=True, include_crowd=True)
    assert crowd.counts.tolist() == [[2, 1], [0, 1]]
    assert crowd.pixel_counts[0, 1] == 12  # the 4x3 crowd block
    assert ls.image_sizes.tolist() == [[8, 16], [8, 16]]
    boxes = jio.load(path, masks=True, boxes=True)
    np.testing.assert_array_equal(boxes.objects.boxes, jio.load(path, boxes=True).objects.boxes)


# --------------------------------------------------------------------------------------------
# Hand-made label maps


def test_grey_png_with_labels_txt_hand_counts(tmp_path):
    m = np.zeros((5, 7), np.uint8)
    m[0, :] = 2                 # 7 pixels of class 2 (one region)
    m[2:4, 1:3] = 1             # 4 pixels of class 1 ...
    m[4, 6] = 1                 # ... and a separate pixel: two regions
    m[3, 5] = 255               # void
    save_grey_png(tmp_path / "x.png", m)
    save_grey_png(tmp_path / "y.png", np.full((2, 3), 3, np.uint8))
    (tmp_path / "labels.txt").write_text("bg\nroad\nsky\ncar\n\n")
    ls = jio.load(tmp_path)  # detected as label maps, labels.txt does not make it YOLO
    assert ls.format == "masks" and ls.class_names == ["bg", "road", "sky", "car"]
    assert ls.image_ids == ["x", "y"]
    assert ls.pixel_counts.tolist() == [[35 - 7 - 5 - 1, 5, 7, 0], [0, 0, 0, 6]]
    assert ls.instance_counts.tolist() == [[1, 2, 1, 0], [0, 0, 0, 1]]
    assert ls.counts.tolist() == [[1, 1, 1, 0], [0, 0, 0, 1]]
    assert ls.image_sizes.tolist() == [[5, 7], [2, 3]] and ls.image_paths is None
    # ignore_index=None: 255 is a class id, beyond this class list
    with pytest.raises(jio.LabelFormatError, match=r"pixel \(y=3, x=5\).*class id 255"):
        jio.read_masks(tmp_path, ignore_index=None)
    # ignore_index=0 drops the background from every count
    ls0 = jio.read_masks(tmp_path, ignore_index=0, class_names=[*"abcd", *map(str, range(
        4, 256))])
    assert ls0.pixel_counts[0, :4].tolist() == [0, 5, 7, 0] and ls0.pixel_counts[0, 255] == 1


def test_unnamed_ids_num_classes_and_class_names(tmp_path):
    m = np.array([[0, 4, 4], [255, 0, 0]], np.uint8)
    save_grey_png(tmp_path / "a.png", m)
    ls = jio.read_masks(tmp_path)
    assert ls.class_names == ["0", "1", "2", "3", "4"]
    assert ls.pixel_counts.tolist() == [[3, 0, 0, 0, 2]]
    ls = jio.read_masks(tmp_path, num_classes=8)
    assert ls.class_names == [str(c) for c in range(8)] and ls.pixel_counts.shape == (1, 8)
    ls = jio.read_masks(tmp_path, class_names=["a", "b", "c", "d", "e"])
    assert ls.class_names == ["a", "b", "c", "d", "e"]
    with pytest.raises(jio.LabelFormatError, match="class id 4 is outside the 3 classes"):
        jio.read_masks(tmp_path, num_classes=3)
    with pytest.raises(jio.LabelFormatError, match="num_classes=4 but 5 class names"):
        jio.read_masks(tmp_path, class_names=list("abcde"), num_classes=4)
    with pytest.raises(ValueError, match="num_classes"):
        jio.read_masks(tmp_path, num_classes=0)
    with pytest.raises(ValueError, match="ignore_index"):
        jio.read_masks(tmp_path, ignore_index=-1)


def test_sixteen_bit_and_binary_maps(tmp_path):
    ids = np.array([[0, 300, 300], [299, 1, 0]], np.uint16)
    save_grey_png(tmp_path / "a" / "m.png", ids)
    with Image.open(tmp_path / "a" / "m.png") as im:
        assert im.mode.startswith("I")
    names = [f"c{k}" for k in range(301)]
    ls = jio.read_masks(tmp_path / "a", class_names=names)
    expected = np.bincount(ids.ravel(), minlength=301)
    np.testing.assert_array_equal(ls.pixel_counts[0], expected)
    with pytest.raises(jio.LabelFormatError, match="class id 300 is outside"):
        jio.read_masks(tmp_path / "a", num_classes=300)
    binary = np.array([[True, False, True], [False, False, True]])
    (tmp_path / "b").mkdir()
    Image.fromarray(binary).convert("1").save(tmp_path / "b" / "m.png")
    ls = jio.read_masks(tmp_path / "b")
    assert ls.class_names == ["0", "1"] and ls.pixel_counts.tolist() == [[3, 3]]
    # 0: (0,1), (1,0), (1,1) touch; 1: (0,0) alone, (0,2)-(1,2) together
    assert ls.instance_counts.tolist() == [[1, 2]]


def test_recursive_folder_with_images_sibling(tmp_path):
    for split in ("train", "val"):
        m = np.zeros((4, 6), np.uint8)
        m[1:3, 1:3] = 1 if split == "train" else 2
        save_palette_png(tmp_path / "masks" / split / f"{split}_1.png", m)
        save_rgb(tmp_path / "images" / split / f"{split}_1.jpg", 4, 6, fmt="JPEG")
    ls = jio.read_masks(tmp_path / "masks", num_classes=3)
    assert ls.image_ids == ["train/train_1", "val/val_1"]
    assert ls.pixel_counts.tolist() == [[20, 4, 0], [20, 0, 4]]
    assert ls.image_paths == tuple(str(tmp_path / "images" / s / f"{s}_1.jpg")
                                   for s in ("train", "val"))
    # an image that is missing makes image_paths None; the counts do not change
    (tmp_path / "images" / "val" / "val_1.jpg").unlink()
    assert jio.read_masks(tmp_path / "masks", num_classes=3).image_paths is None


def test_regions_match_scipy_ndimage_label():
    from jbalance._src.io.masks import _regions

    rng = np.random.default_rng(0)
    eight = np.ones((3, 3), bool)
    for trial in range(300):
        h, w = (int(v) for v in rng.integers(1, 20, 2))
        if trial % 2:
            coarse = rng.integers(0, 4, (h // 3 + 1, w // 3 + 1))
            m = np.kron(coarse, np.ones((3, 3), np.int64))[:h, :w].astype(np.uint8)
        else:
            m = rng.integers(0, 4, (h, w)).astype(np.uint8)
        m[rng.random((h, w)) < 0.1] = 255
        want = [ndimage.label(m == c, structure=eight)[1] for c in range(4)]
        assert _regions(m, 255, 4).tolist() == want, (trial, m)
    m = np.array([[0, 1], [1, 0]], np.uint8)  # a checkerboard: each class is one region
    assert _regions(m, None, 2).tolist() == [1, 1]


def test_detection_of_mask_folders_keeps_existing_formats(tmp_path):
    voc = tmp_path / "VOC2012"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "Annotations" / "a.xml").write_text(
        "<annotation><object><name>dog</name></object></annotation>")
    save_palette_png(voc / "SegmentationClass" / "a.png", np.full((3, 4), 12, np.uint8))
    assert jio.detect_format(voc) == "voc"  # boxes by default, as before
    assert jio.load(voc).counts.tolist() == [[1]]
    ls = jio.load(voc, masks=True)
    assert ls.format == "masks" and ls.pixel_counts[0, 12] == 12
    yolo = tmp_path / "yolo"
    yolo.mkdir()
    save_rgb(yolo / "a.png", 4, 4)
    (yolo / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (yolo / "classes.txt").write_text("cat\n")
    assert jio.detect_format(yolo) == "yolo"
    maps = tmp_path / "maps"
    save_grey_png(maps / "a.png", np.zeros((2, 2), np.uint8))
    (maps / "classes.txt").write_text("bg\n")
    assert jio.detect_format(maps) == "masks"
    with pytest.raises(ValueError, match="hold no masks"):
        jio.load(yolo / "a.txt", format="yolo", masks=True)
    with pytest.raises(ValueError, match="PNG label maps hold no boxes"):
        jio.load(maps, masks=True, boxes=True)
    csv = tmp_path / "t.csv"
    csv.write_text("id,a\n1,1\n")
    with pytest.raises(ValueError, match="csv label files hold no masks"):
        jio.load(csv, masks=True)


# --------------------------------------------------------------------------------------------
# COCO segmentations against pycocotools


def _random_polygon(rng, h, w):
    k = int(rng.integers(3, 12))
    xs = rng.uniform(-0.2 * w, 1.2 * w, k)
    ys = rng.uniform(-0.2 * h, 1.2 * h, k)
    if rng.random() < 0.3:
        xs, ys = np.round(xs), np.round(ys)
    elif rng.random() < 0.3:
        xs, ys = np.round(xs * 2) / 2, np.round(ys * 2) / 2
    poly = np.stack([xs, ys], 1).ravel().tolist()
    if rng.random() < 0.2:
        poly += poly[:2]  # a repeated vertex: a zero-length edge
    return poly


def test_polygons_and_rle_match_pycocotools_pixel_for_pixel():
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(1)
    for _ in range(400):
        h, w = (int(v) for v in rng.integers(1, 50, 2))
        polys = [_random_polygon(rng, h, w) for _ in range(int(rng.integers(1, 3)))]
        want = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, h, w)))
        s, e = cm.segmentation_intervals(polys, h, w)
        np.testing.assert_array_equal(cm.intervals_to_mask(s, e, h, w), want.astype(bool))
        assert cm.union_length(s, e) == int(mask_utils.area(mask_utils.merge(
            mask_utils.frPyObjects(polys, h, w))))
        # the same mask as compressed and uncompressed RLE
        rle = mask_utils.encode(np.asfortranarray(want))
        s, e = cm.segmentation_intervals({"counts": rle["counts"].decode(), "size": [h, w]},
                                         h, w)
        np.testing.assert_array_equal(cm.intervals_to_mask(s, e, h, w), want.astype(bool))
        s, e = cm.segmentation_intervals({"counts": column_major_runs(want), "size": [h, w]},
                                         h, w)
        np.testing.assert_array_equal(cm.intervals_to_mask(s, e, h, w), want.astype(bool))


def test_long_polygons_on_a_large_image_match_pycocotools():
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(5)
    angle = np.linspace(0, 2 * np.pi, 3000, endpoint=False)
    radius = 700 + 200 * np.sin(7 * angle)
    circle = np.stack([1000 + radius * np.cos(angle), 900 + radius * np.sin(angle)], 1)
    polys = [circle.ravel().tolist()] + [_random_polygon(rng, 1800, 2000) for _ in range(3)]
    want = mask_utils.decode(mask_utils.frPyObjects(polys, 1800, 2000)).astype(bool)
    for poly, mask in zip(polys, np.moveaxis(want, 2, 0)):
        s, e = cm.segmentation_intervals([poly], 1800, 2000)
        assert cm.union_length(s, e) == int(mask.sum())
        np.testing.assert_array_equal(cm.intervals_to_mask(s, e, 1800, 2000), mask)


def test_polygons_with_grid_aligned_and_outside_vertices_match_pycocotools():
    # Coordinates on the 1/5-pixel grid put vertices exactly on column centres, negative
    # ones exercise C's truncation toward zero: the cases where a rounding slip would show.
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(6)
    for trial in range(300):
        h, w = (int(v) for v in rng.integers(1, 300, 2))
        k = int(rng.integers(3, 30))
        xs, ys = rng.uniform(-0.5 * w, 1.5 * w, k), rng.uniform(-0.5 * h, 1.5 * h, k)
        if trial % 3 == 0:
            xs, ys = np.round(xs * 5) / 5, np.round(ys * 5) / 5
        elif trial % 3 == 1:
            xs, ys = np.round(xs * 5) / 5 + 0.1, np.round(ys) + 0.3
        poly = np.stack([xs, ys], 1).ravel().tolist()
        want = mask_utils.decode(mask_utils.frPyObjects([poly], h, w))[:, :, 0].astype(bool)
        s, e = cm.segmentation_intervals([poly], h, w)
        np.testing.assert_array_equal(cm.intervals_to_mask(s, e, h, w), want)


def test_compressed_rle_of_noise_and_large_runs():
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(2)
    for p in (0.01, 0.5, 0.99):
        m = (rng.random((300, 700)) < p).astype(np.uint8)
        m[:, 100:600] = m[0, 0]  # long runs: multi-character numbers, both signs of deltas
        rle = mask_utils.encode(np.asfortranarray(m))
        counts = cm.rle_string_counts(rle["counts"].decode())
        assert counts.sum() == m.size
        s, e = cm.segmentation_intervals({"counts": rle["counts"].decode(),
                                          "size": [300, 700]}, 300, 700)
        np.testing.assert_array_equal(cm.intervals_to_mask(s, e, 300, 700), m.astype(bool))
        assert cm.union_length(s, e) == int(mask_utils.area(rle))


def test_coco_per_class_union_against_pycocotools(tmp_path):
    coco_api = pytest.importorskip("pycocotools.coco")
    rng = np.random.default_rng(3)
    images, anns = [], []
    for i in range(6):
        h, w = (int(v) for v in rng.integers(10, 40, 2))
        images.append({"id": i + 1, "file_name": f"{i}.jpg", "height": h, "width": w})
        for _ in range(int(rng.integers(0, 5))):
            cat = int(rng.integers(1, 4))
            polys = [_random_polygon(rng, h, w) for _ in range(int(rng.integers(1, 3)))]
            seg = polys
            if rng.random() < 0.3:  # some as RLE
                import pycocotools.mask as mask_utils
                rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
                seg = {"counts": rle["counts"].decode(), "size": [h, w]}
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cat,
                         "segmentation": seg, "bbox": [0, 0, 1, 1], "iscrowd": 0,
                         "area": 1.0})
    doc = {"images": images, "annotations": anns,
           "categories": [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]}
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(doc))
    ls = jio.read_coco_masks(path)
    import contextlib
    import io as _io
    with contextlib.redirect_stdout(_io.StringIO()):
        api = coco_api.COCO(str(path))
    want = np.zeros((6, 3), np.int64)
    for i, img in enumerate(images):
        for c in (1, 2, 3):
            masks = [api.annToMask(a) for a in api.loadAnns(api.getAnnIds(imgIds=img["id"],
                                                                          catIds=[c]))]
            if masks:
                want[i, c - 1] = int(np.logical_or.reduce(masks).sum())
    np.testing.assert_array_equal(ls.pixel_counts, want)
    np.testing.assert_array_equal(ls.counts, jio.read_coco(path).counts)


# --------------------------------------------------------------------------------------------
# Downstream: the solver and the command line take a mask set


@pytest.mark.slow  # compiles the solver
def test_solver_and_report_take_mask_sets(tmp_path):
    rng = np.random.default_rng(4)
    for i in range(30):
        m = np.zeros((6, 8), np.uint8)
        m[: int(rng.integers(1, 6)), :3] = 1 + (i % 10 == 0)   # class 2 is rare
        save_grey_png(tmp_path / f"{i:02d}.png", m)
    ls = jio.load(tmp_path)
    assert ls.counts.sum(axis=0).tolist() == [30, 27, 3]
    # The background is in every image: every copy adds to it as much as to a rare class, so
    # it is left out of the objective (docs/io.md says so).
    fg = ls.counts[:, 1:]
    sol = jbalance.resample.solve(fg, num_steps=200)
    repeats = np.asarray(sol.repeats)
    assert repeats.shape == (30,)
    before, after = fg.sum(axis=0), repeats @ fg
    assert after[1] / after[0] > 2 * before[1] / before[0]  # the rare class gains images
    assert "2" in str(jbalance.report(ls))
    by_pixels = jbalance.resample.solve(ls.pixel_counts, num_steps=200)
    assert np.asarray(by_pixels.repeats).shape == (30,)


@pytest.mark.slow  # compiles the solver
def test_cli_inspect_and_plan_on_a_mask_folder(tmp_path, capsys):
    from jbalance import cli

    for stem, ids in _voc_maps().items():
        save_palette_png(tmp_path / "voc" / "SegmentationClass" / f"{stem}.png", ids)
    code = cli.main(["inspect", str(tmp_path / "voc"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["format"] == "masks"
    plan = tmp_path / "plan.csv"
    code = cli.main(["plan", str(tmp_path / "voc"), "--steps", "20", "--quiet", "--out",
                     str(plan)])
    capsys.readouterr()
    assert code == 0
    assert plan.read_text().splitlines()[1:] and \
        plan.read_text().splitlines()[0] == "image_id,repeats"


if __name__ == "__main__":  # python tests/io/test_io_masks.py: rewrite the fixtures
    import shutil

    if FIXTURES.exists():
        shutil.rmtree(FIXTURES)
    write_fixtures(FIXTURES)
    print(f"wrote {FIXTURES}", file=sys.stderr)
