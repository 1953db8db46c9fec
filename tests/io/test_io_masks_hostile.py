"""Hostile and careless segmentation files: one named error, bounded memory, nothing skipped.

PNG label maps (truncated, bombs, colour images, out-of-range ids, sizes that disagree with
the image) and COCO segmentations (RLE that does not add up, non-finite or runaway polygons,
masks of the wrong size). Every error is a `LabelFormatError` naming the file and the place.
"""

import io
import json
import pathlib
import struct
import sys
import time
import tracemalloc
import zlib

import numpy as np
import pytest

import jbalance.io as jio
from jbalance._src.io import coco_masks as cm

Image = pytest.importorskip("PIL.Image")


def png_bytes(width: int, height: int, *, color_type: int = 0, bit_depth: int = 8,
              raw: bytes | None = None) -> bytes:
    """A PNG written chunk by chunk (so its header can claim anything)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    if raw is None:
        raw = b"".join(b"\x00" + bytes(width) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) +
            chunk(b"IEND", b""))


def save(path: pathlib.Path, ids: np.ndarray, mode: str | None = None) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(ids)
    if mode is not None:
        im = im.convert(mode)
    im.save(path, format="PNG")
    return path


def valid_png(h: int = 16, w: int = 24) -> bytes:
    m = (np.arange(h * w).reshape(h, w) % 3).astype(np.uint8)
    m[0] = 255
    buf = io.BytesIO()
    im = Image.fromarray(m, mode="P")
    im.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    im.save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# PNG label maps


def test_handmade_png_helper_reads_back(tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes(5, 3))
    assert jio.read_masks(tmp_path).pixel_counts.tolist() == [[15]]


def test_truncated_png_names_the_file(tmp_path):
    data = valid_png(64, 64)
    (tmp_path / "m.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(jio.LabelFormatError, match="truncated or corrupt") as e:
        jio.read_masks(tmp_path)
    assert e.value.path == str(tmp_path / "m.png")


def test_huge_declared_size_is_refused_before_decoding(tmp_path):
    p = tmp_path / "bomb.png"
    p.write_bytes(png_bytes(100_000, 100_000, raw=b"\x00" * 10))
    tracemalloc.start()
    try:
        with pytest.raises(jio.LabelFormatError, match=r"100000x100000 .* max_pixels"):
            jio.read_masks(tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak
    # A real size above the bound reads with a larger max_pixels, and not without.
    (tmp_path / "bomb.png").unlink()
    save(tmp_path / "m.png", np.zeros((30, 40), np.uint8))
    with pytest.raises(jio.LabelFormatError, match="max_pixels=1000"):
        jio.read_masks(tmp_path, max_pixels=1000)
    assert jio.read_masks(tmp_path, max_pixels=1200).pixel_counts.tolist() == [[1200]]


def test_declared_size_with_too_little_data_is_an_error_not_zeros(tmp_path):
    (tmp_path / "m.png").write_bytes(png_bytes(2000, 2000, raw=b"\x00" * 100))
    with pytest.raises(jio.LabelFormatError, match="truncated or corrupt"):
        jio.read_masks(tmp_path)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA"])
def test_colour_masks_are_not_label_maps(tmp_path, mode):
    save(tmp_path / "m.png", np.zeros((4, 4), np.uint8), mode=mode)
    with pytest.raises(jio.LabelFormatError, match=f"a {mode} image is not a label map"):
        jio.read_masks(tmp_path)


def test_not_a_png_and_corrupt_header(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "m.png", format="JPEG")
    with pytest.raises(jio.LabelFormatError, match="not a PNG file.*JPEG"):
        jio.read_masks(tmp_path)
    (tmp_path / "m.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(jio.LabelFormatError, match="corrupt PNG header"):
        jio.read_masks(tmp_path)


def test_ids_outside_the_class_list_name_the_pixel(tmp_path):
    m = np.zeros((5, 6), np.uint8)
    m[0, 0] = 255   # void: fine
    m[3, 4] = 7     # beyond the 3 classes
    save(tmp_path / "a.png", m)
    (tmp_path / "labels.txt").write_text("bg\ncat\ndog\n")
    with pytest.raises(jio.LabelFormatError) as e:
        jio.read_masks(tmp_path)
    assert e.value.path == str(tmp_path / "a.png") and e.value.where == "pixel (y=3, x=4)"
    assert "class id 7 is outside the 3 classes of" in e.value.reason
    assert "labels.txt" in e.value.reason and "255 is ignored" in e.value.reason
    m[3, 4] = 2
    save(tmp_path / "a.png", m)
    assert jio.read_masks(tmp_path).pixel_counts.tolist() == [[28, 0, 1]]


def test_unnamed_ids_are_bounded(tmp_path):
    m = np.array([[0, 5000]], np.uint16)
    save(tmp_path / "a.png", m)
    with pytest.raises(jio.LabelFormatError, match="class id 5000 without class names: ids "
                       "must be below 1024"):
        jio.read_masks(tmp_path)


def test_map_and_image_sizes_must_agree(tmp_path):
    save(tmp_path / "SegmentationClass" / "a.png", np.zeros((6, 8), np.uint8))
    (tmp_path / "JPEGImages").mkdir()
    Image.fromarray(np.zeros((8, 6, 3), np.uint8)).save(tmp_path / "JPEGImages" / "a.jpg")
    with pytest.raises(jio.LabelFormatError, match=r"label map is 6x8 .* its image .*a\.jpg "
                       r"is 8x6") as e:
        jio.read_masks(tmp_path)
    assert e.value.path.endswith("a.png")


def test_empty_folder_missing_split_entry_duplicate_ids(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.md").write_text("nothing")
    with pytest.raises(jio.LabelFormatError, match="no PNG label maps"):
        jio.read_masks(tmp_path / "x")
    save(tmp_path / "SegmentationClass" / "a.png", np.zeros((2, 2), np.uint8))
    split = tmp_path / "ImageSets" / "Segmentation" / "train.txt"
    split.parent.mkdir(parents=True)
    split.write_text("a\nb\n")
    with pytest.raises(FileNotFoundError, match="b.png"):
        jio.read_masks(tmp_path, split="train")
    city = tmp_path / "gtFine" / "c"
    save(city / "c_1_gtFine_labelIds.png", np.zeros((2, 2), np.uint8))
    save(city / "c_1_gtFine_labelTrainIds.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(jio.LabelFormatError, match="duplicate entry 'c/c_1'"):
        jio.read_masks(tmp_path / "gtFine", pattern="*Ids.png")
    with pytest.raises(FileNotFoundError):
        jio.read_masks(tmp_path / "nowhere")


def test_class_list_file_must_be_utf8(tmp_path):
    save(tmp_path / "a.png", np.zeros((2, 2), np.uint8))
    (tmp_path / "classes.txt").write_bytes(b"bg\n\xff\xfe\n")
    with pytest.raises(jio.LabelFormatError, match="not UTF-8"):
        jio.read_masks(tmp_path)


def test_missing_pillow_names_the_extra(tmp_path, monkeypatch):
    save(tmp_path / "a.png", np.zeros((2, 2), np.uint8))
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"jbalance\[masks\]"):
        jio.read_masks(tmp_path)


def test_mutated_pngs_raise_only_label_format_error(tmp_path):
    rng = np.random.default_rng(0)
    good = valid_png()
    p = tmp_path / "m.png"
    outcomes = {"ok": 0, "error": 0}
    for trial in range(300):
        data = bytearray(good)
        if trial % 3 == 0:
            data = data[: int(rng.integers(8, len(data)))]
        else:
            for _ in range(int(rng.integers(1, 4))):
                data[int(rng.integers(8, len(data)))] = int(rng.integers(0, 256))
        p.write_bytes(bytes(data))
        try:
            ls = jio.read_masks(tmp_path, ignore_index=None, num_classes=256)
        except jio.LabelFormatError as e:
            assert e.path == str(p)
            outcomes["error"] += 1
        else:  # a flip in an ancillary byte can leave a valid map: it must read consistently
            assert ls.pixel_counts.sum() == np.prod(ls.image_sizes[0])
            outcomes["ok"] += 1
    assert outcomes["error"] > 100


def test_memory_is_one_image_whatever_the_folder_holds(tmp_path):
    rng = np.random.default_rng(1)

    def peak_for(n: int) -> int:
        folder = tmp_path / str(n)
        for i in range(n):
            save(folder / f"{i:03d}.png", rng.integers(0, 3, (200, 300)).astype(np.uint8))
        tracemalloc.start()
        try:
            ls = jio.read_masks(folder)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert ls.num_images == n
        return peak

    small, large = peak_for(2), peak_for(16)
    assert large < 1.5 * small + (256 << 10), (small, large)


# --------------------------------------------------------------------------------------------
# COCO segmentations


def coco_file(tmp_path: pathlib.Path, seg, *, height=8, width=10, image_extra=None,
              ann_extra=None) -> pathlib.Path:
    image = {"id": 5, "file_name": "x.jpg", "height": height, "width": width}
    if image_extra is not None:
        image = {**image, **image_extra}
        image = {k: v for k, v in image.items() if v is not None}
    ann = {"id": 77, "image_id": 5, "category_id": 1, "bbox": [0, 0, 1, 1], "iscrowd": 0}
    if seg is not ...:
        ann["segmentation"] = seg
    ann.update(ann_extra or {})
    doc = {"images": [image], "categories": [{"id": 1, "name": "a"}], "annotations": [ann]}
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(doc))
    return path


def expect_error(path: pathlib.Path, pattern: str, **options) -> jio.LabelFormatError:
    with pytest.raises(jio.LabelFormatError, match=pattern) as e:
        jio.load(path, masks=True, **options)
    assert e.value.path == str(path)
    return e.value


@pytest.mark.parametrize("counts, pattern", [
    ([10, 5], "sum to 15, but a 8x10 mask has 80 pixels"),
    ([10, -5, 75], "negative run length"),
    ([10.0, 70], "must be whole numbers"),
    ([True, 79], "must be whole numbers"),
    ("Q1", "sum to"),
    ("Q1\u00e9", "ASCII"),
    ("Q1 2", r"character ' '"),
    ("Q1k", "truncated string"),
    ("n" * 13 + "0", "14 characters"),
    ("0@", "negative run length"),
    (7, "list of run lengths or a compressed string"),
])
def test_bad_rle_names_file_annotation_and_image(tmp_path, counts, pattern):
    err = expect_error(coco_file(tmp_path, {"counts": counts, "size": [8, 10]}), pattern)
    assert err.where == "annotations[0] (id 77), image_id 5"


@pytest.mark.parametrize("size", [[10, 8], [8], "8x10", [8.0, 10]])
def test_rle_size_must_be_the_images(tmp_path, size):
    err = expect_error(coco_file(tmp_path, {"counts": [80], "size": size}), "size")
    assert "image_id 5" in err.where


@pytest.mark.parametrize("poly, pattern", [
    ("[[1, 1, NaN, 2, 3, 4]]", "coordinate nan is not a finite number"),
    ("[[1, 1, Infinity, 2, 3, 4]]", "coordinate inf is not a finite number"),
    ("[[1, 1, 1e400, 2, 3, 4]]", "not a finite number"),
    ("[[1, 1, 2, 2, 3]]", "at least 3 points"),
    ("[[1, 1, 2, 2]]", "reads 4 numbers as a box"),
    ('[[1, 1, "2", 2, 3, 4]]', "list of numbers"),
    ("[[1, 1, true, 2, 3, 4]]", "list of numbers"),
    ("[1, 1, 2, 2, 3, 4]", "list of numbers"),
    ("[[1, 1, 2, 2, 3, 1e9]]", "far outside its 8x10 image"),
    ('"polygon"', "list of polygons or an RLE object"),
    ('{"size": [8, 10]}', "needs 'counts' and 'size'"),
])
def test_bad_polygons(tmp_path, poly, pattern):
    path = coco_file(tmp_path, "SEG")
    path.write_text(path.read_text().replace('"SEG"', poly))
    err = expect_error(path, pattern)
    assert err.where == "annotations[0] (id 77), image_id 5"


def test_runaway_polygon_is_refused_quickly(tmp_path):
    zigzag = []
    for k in range(20_000):  # crosses the whole image 20,000 times
        zigzag += [0.0 if k % 2 else 999.0, 999.0 * k / 20_000]
    path = coco_file(tmp_path, [zigzag], height=1000, width=1000)
    start = time.perf_counter()
    expect_error(path, "boundary walks")
    assert time.perf_counter() - start < 5


def test_missing_segmentation_and_image_size(tmp_path):
    err = expect_error(coco_file(tmp_path, ...), "no 'segmentation'.*without masks=True")
    assert err.where.startswith("annotations[0] (id 77)")
    path = coco_file(tmp_path, [[1, 1, 5, 1, 5, 5]], image_extra={"height": None})
    expect_error(path, r"images\[0\].*no valid 'height' and 'width'")
    # without masks=True the same file reads as before (read_coco does not need sizes)
    assert jio.load(path).counts.tolist() == [[1]]
    # a crowd annotation is skipped with include_crowd=False: then it is not checked
    crowd = coco_file(tmp_path, {"counts": [1], "size": [8, 10]}, ann_extra={"iscrowd": 1})
    assert jio.load(crowd, masks=True).pixel_counts.tolist() == [[0]]
    expect_error(crowd, "sum to 1", include_crowd=True)


def test_image_larger_than_max_pixels(tmp_path):
    path = coco_file(tmp_path, [[1, 1, 5, 1, 5, 5]], height=1 << 20, width=1 << 20)
    expect_error(path, "1048576x1048576 = .* more than max_pixels")
    small = coco_file(tmp_path, [[1, 1, 5, 1, 5, 5]], height=100, width=100)
    expect_error(small, "more than max_pixels=5000", max_pixels=5000)


def test_large_rle_allocates_no_raster(tmp_path):
    path = coco_file(tmp_path, {"counts": [0, 8000 * 8000], "size": [8000, 8000]},
                     height=8000, width=8000)
    tracemalloc.start()
    try:
        ls = jio.load(path, masks=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ls.pixel_counts.tolist() == [[64_000_000]]
    assert peak < 2 << 20, peak


def test_random_rle_strings_raise_only_named_errors():
    rng = np.random.default_rng(2)
    alphabet = [chr(c) for c in range(40, 120)]
    ok = 0
    for _ in range(2000):
        s = "".join(rng.choice(alphabet, int(rng.integers(0, 12))))
        try:
            counts = cm.rle_string_counts(s)
        except cm._SegmentationError:
            continue
        assert counts.dtype == np.int64 and (counts >= 0).all()
        ok += 1
    assert ok > 0


def test_mutated_coco_masks_raise_only_label_format_error(tmp_path):
    rng = np.random.default_rng(3)
    good = json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "height": 20, "width": 30}],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 0,
             "segmentation": [[1.5, 1.5, 10, 2, 9, 12.25, 3, 8]]},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [1, 1, 5, 5], "iscrowd": 0,
             "segmentation": {"counts": "W3<8000000000000000000000000000]1HkN000000000P1",
                              "size": [20, 30]}},
            {"id": 3, "image_id": 1, "category_id": 2, "bbox": [1, 1, 5, 5], "iscrowd": 1,
             "segmentation": {"counts": [100, 50, 450], "size": [20, 30]}}]})
    path = tmp_path / "instances.json"
    digits = "0123456789-.eE,[]{}\"NaInfity"
    for _ in range(400):
        data = list(good)
        for _ in range(int(rng.integers(1, 4))):
            data[int(rng.integers(0, len(data)))] = str(rng.choice(list(digits)))
        path.write_text("".join(data))
        try:
            ls = jio.load(path, masks=True, include_crowd=True)
        except jio.LabelFormatError as e:
            assert e.path == str(path)
        else:
            assert (ls.pixel_counts >= 0).all() and (ls.pixel_counts <= 600).all()
