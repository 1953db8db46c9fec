"""Tests for jbalance.report against hand-worked values and brute-force references."""

import doctest
import itertools
import json
import math
import re

import numpy as np
import pytest
from conftest import load_label_set

import jbalance
import jbalance.io as jio
from jbalance._src import report as report_src


def _reference(counts):
    """Statistics written from their definitions with plain loops."""
    counts = np.asarray(counts)
    n, c = counts.shape
    objects = [int(sum(counts[i, j] for i in range(n))) for j in range(c)]
    images = [int(sum(counts[i, j] > 0 for i in range(n))) for j in range(c)]
    total = sum(objects)
    p = [o / total for o in objects]
    entropy = -sum(q * math.log(q) for q in p if q > 0)
    mean = total / c
    std = math.sqrt(sum((o - mean) ** 2 for o in objects) / c)
    pairs = {}
    for a, b in itertools.combinations(range(c), 2):
        both = sum(counts[i, a] > 0 and counts[i, b] > 0 for i in range(n))
        if both:
            pairs[(a, b)] = (both, both * n / (images[a] * images[b]))
    return dict(objects=objects, images=images, shares=p, neff=math.exp(entropy),
                cv=std / mean, ratio=max(objects) / min(objects), pairs=pairs,
                empty=sum(counts[i].sum() == 0 for i in range(n)),
                classes_per_image=sum((counts[i] > 0).sum() for i in range(n)) / n)


def test_hand_worked_example():
    # 3 images; car: 3 + 1 = 4 objects in 2 images, bike: 1 object; image 2 is empty.
    r = jbalance.report(np.array([[3, 0], [1, 1], [0, 0]]), class_names=["car", "bike"])
    assert r.objects_per_class.tolist() == [4, 1]
    assert r.images_per_class.tolist() == [2, 1]
    assert r.majority_class == "car" and r.minority_class == "bike"
    assert r.majority_share == pytest.approx(0.8)
    assert r.imbalance_ratio == pytest.approx(4.0) and r.image_imbalance_ratio == 2.0
    # CV: totals 4 and 1, mean 2.5, population std 1.5.
    assert r.cv == pytest.approx(0.6)
    # N_eff = exp(-(0.8 ln 0.8 + 0.2 ln 0.2)) = exp(0.500402) = 1.649385.
    assert r.effective_num_classes == pytest.approx(1.649385, abs=1e-6)
    assert r.empty_images == 1 and r.num_objects == 5 and r.num_images == 3
    assert r.mean_classes_per_image == pytest.approx(1.0)
    assert r.multi_class_images == 1
    assert len(r.top_pairs) == 1
    pair = r.top_pairs[0]
    # Both in 1 of 3 images: lift = (1/3) / ((2/3)(1/3)) = 1.5.
    assert (pair.first, pair.second, pair.images) == ("car", "bike", 1)
    assert pair.lift == pytest.approx(1.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_on_random_counts(seed):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rng.uniform(0.05, 2.0, 7), size=(60, 7))
    counts[:, 0] += 1  # every class present somewhere
    counts[:, 3] = np.maximum(counts[:, 3], rng.integers(0, 2, 60))
    ref = _reference(counts)
    r = jbalance.report(counts, top_pairs=50)
    np.testing.assert_array_equal(r.objects_per_class, ref["objects"])
    np.testing.assert_array_equal(r.images_per_class, ref["images"])
    np.testing.assert_allclose(r.shares, ref["shares"], rtol=1e-12)
    assert r.effective_num_classes == pytest.approx(ref["neff"], rel=1e-12)
    assert r.cv == pytest.approx(ref["cv"], rel=1e-12)
    assert r.imbalance_ratio == pytest.approx(ref["ratio"])
    assert r.empty_images == ref["empty"]
    assert r.mean_classes_per_image == pytest.approx(ref["classes_per_image"])
    got = {(r.class_names.index(p.first), r.class_names.index(p.second)): (p.images, p.lift)
           for p in r.top_pairs}
    assert got.keys() == ref["pairs"].keys()
    for k, (images, lift) in ref["pairs"].items():
        assert got[k][0] == images and got[k][1] == pytest.approx(lift)
    counts_sorted = [p.images for p in r.top_pairs]
    assert counts_sorted == sorted(counts_sorted, reverse=True)


def test_effective_number_bounds():
    assert jbalance.report(np.ones((4, 5), int)).effective_num_classes == pytest.approx(5.0)
    one = np.zeros((4, 3), int)
    one[:, 1] = 2
    r = jbalance.report(one)
    assert r.effective_num_classes == pytest.approx(1.0)
    assert math.isinf(r.imbalance_ratio) and r.missing_classes == ("0", "2")


def test_advice_rules():
    skewed = np.zeros((993, 3), int)
    skewed[:940, 0] = 1
    skewed[940:990, 1] = 1
    skewed[990:, 2] = 1
    r = jbalance.report(skewed, class_names=["bg", "a", "b"])
    text = " ".join(r.advice)
    assert "'bg' holds 94.7%" in text and "above 90%" in text
    # One class per image: the single-label guide, and only it.
    assert "Single-label classifier: start with logit-adjusted cross-entropy" in text
    assert "Multi-label" not in text and "Detection" not in text
    # b: 3 objects < 0.1 * median (50) is rare; a is not.
    assert r.rare_classes == ("b",) and "Rare classes (b) can be mistaken for outliers" in text
    mild = jbalance.report(np.repeat(np.eye(3, dtype=int), [10, 20, 40], axis=0))
    assert mild.rare_classes == () and "least frequent classes (0)" in " ".join(mild.advice)
    balanced = jbalance.report(np.eye(4, dtype=int))
    assert len(balanced.advice) == 1 and "no imbalance remedy" in balanced.advice[0]
    # 89% majority: no flag; a custom threshold flags it.
    near = np.zeros((100, 2), int)
    near[:89, 0] = 1
    near[89:, 1] = 1
    assert not any("above" in a for a in jbalance.report(near).advice)
    assert any("above 80%" in a for a in jbalance.report(near, majority_threshold=0.8).advice)
    # Several classes in an image: multi-label; a class twice in an image: detection.
    tags = np.array([[1, 1, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 1]])
    tag_advice = " ".join(jbalance.report(tags).advice)
    assert "Multi-label" in tag_advice and "asymmetric_loss" in tag_advice
    assert "Single-label" not in tag_advice and "Detection" not in tag_advice
    boxes = tags.copy()
    boxes[0, 0] = 3
    box_advice = " ".join(jbalance.report(boxes).advice)
    assert "Detection" in box_advice and "seesaw_loss" in box_advice
    assert "Multi-label" not in box_advice
    # The guide names only functions that exist.
    modules = {"losses": jbalance.losses, "resample": jbalance.resample,
               "augment": jbalance.augment, "sampling": jbalance.sampling}
    for text in report_src._GUIDE.values():
        for mod, name in re.findall(r"(?:jbalance\.)?(losses|resample|augment|sampling)\.(\w+)",
                                    text):
            assert hasattr(modules[mod], name), name
    empty = jbalance.report(np.array([[0, 0], [1, 2]]))
    assert any("1 image(s) (50.0%) have no objects" in a for a in empty.advice)
    missing = jbalance.report(np.array([[0, 3], [0, 2]]))
    assert any("no objects at all" in a and "0" in a for a in missing.advice)


def test_table_and_json():
    data = load_label_set("voc0712_trainval")
    ls = jio.from_counts(data["counts"], class_names=data["class_names"])
    r = jbalance.report(ls)  # a LabelSet brings its class names
    assert r.class_names[14] == "person" and r.majority_class == "person"
    assert round(r.imbalance_ratio, 1) == 16.3  # the figure in jbalance/data/README.md
    assert 1.0 < r.effective_num_classes < 20.0
    table = str(r)
    assert table == r.to_table()
    lines = table.splitlines()
    row_of = {name: k for k, line in enumerate(lines) for name in r.class_names
              if line.startswith(name + " ")}
    assert row_of["person"] < row_of["car"] < row_of["sofa"]  # sorted by objects
    assert "advice:" in table and "effective number" in table
    short = r.to_table(max_rows=4)
    assert "..." in short and "sofa" in short and "bus" in short and "boat" not in short
    doc = json.loads(r.to_json())
    assert doc["num_classes"] == 20 and doc["objects_per_class"][14] == 13256
    assert doc["top_pairs"][0]["first"] in r.class_names
    assert doc == json.loads(json.dumps(r.as_dict()))
    inf = jbalance.report(np.array([[1, 0]]))
    assert json.loads(inf.to_json())["imbalance_ratio"] is None  # strict JSON: no Infinity


def test_bad_inputs():
    with pytest.raises(ValueError, match="2-D"):
        jbalance.report(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="negative"):
        jbalance.report(np.array([[1, -2]]))
    with pytest.raises(ValueError, match="class_names"):
        jbalance.report(np.ones((2, 2)), class_names=["a"])
    with pytest.raises(ValueError, match="majority_threshold"):
        jbalance.report(np.ones((2, 2)), majority_threshold=1.5)
    with pytest.raises(ValueError, match="at least one class"):
        jbalance.report(np.ones((2, 0)))


def test_lazy_attribute_and_doctests():
    assert jbalance.report is report_src.report
    results = doctest.testmod(report_src)
    assert results.attempted >= 3 and results.failed == 0


def test_per_pixel_label_sets_get_the_segmentation_guide():
    from jbalance import io as jio

    counts = np.array([[1, 1, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 1]])
    names = ("background", "road", "sign")
    masks = jio.LabelSet(*([None] * len(jio.LabelSet._fields)))._replace(
        counts=counts, class_names=names, pixel_counts=counts * 100)
    advice = " ".join(jbalance.report(masks).advice)
    assert "Segmentation" in advice and "pixel_class_weights" in advice
    assert "Multi-label" not in advice
    # The same counts without pixel counts read as multi-label.
    assert "Multi-label" in " ".join(jbalance.report(masks._replace(pixel_counts=None)).advice)
