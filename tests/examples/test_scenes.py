"""The long-tailed digit scenes of examples/scenes: determinism, disjoint pools, the tail, and
labels (presence, counts, boxes, semantic and instance maps) that agree with each other."""

import numpy as np
import pytest

pytest.importorskip("sklearn")

from examples.scenes import generate, make_scenes  # noqa: E402

SMALL = dict(num_train=600, num_val=200, num_test=200)


@pytest.fixture(scope="module")
def scenes():
    return make_scenes(3, **SMALL)


def test_same_seed_same_scenes_other_seed_other_scenes(scenes):
    again = make_scenes(3, **SMALL)
    for split in ("train", "val", "test"):
        for a, b in zip(getattr(scenes, split), getattr(again, split)):
            np.testing.assert_array_equal(a, b)
    other = make_scenes(4, **SMALL)
    assert not np.array_equal(other.train.images, scenes.train.images)


def test_pools_are_disjoint_and_each_split_draws_from_its_own(scenes):
    pools = {k: np.concatenate(v) for k, v in scenes.pools.items()}
    assert not set(pools["train"]) & set(pools["val"])
    assert not set(pools["train"]) & set(pools["test"])
    assert not set(pools["val"]) & set(pools["test"])
    for split in ("train", "val", "test"):
        s = getattr(scenes, split)
        used = s.digit_ids[s.valid]
        assert set(used) <= set(pools[split]), split
        assert np.all(s.digit_ids[~s.valid] == -1)
    # The digit ids name real digits of the right class.
    from sklearn.datasets import load_digits

    target = load_digits().target
    s = scenes.train
    np.testing.assert_array_equal(target[s.digit_ids[s.valid]], s.classes[s.valid])


def test_training_instances_follow_the_100_to_1_profile(scenes):
    s = scenes.train
    n_c = np.bincount(s.classes[s.valid], minlength=10)
    # Independent reference: T * 100^(-c/9) / sum_k 100^(-k/9), within one of rounding.
    r = 100.0 ** (-np.arange(10) / 9.0)
    exact = n_c.sum() * r / r.sum()
    assert np.all(np.abs(n_c - exact) < 1.0), (n_c, exact)
    np.testing.assert_array_equal(n_c, scenes.instance_counts)
    assert np.all(np.diff(n_c) < 0)
    # Rare as images too, and mostly sharing their canvas with a frequent class.
    images_per_class = s.presence.sum(0)
    assert images_per_class[0] > 40 * images_per_class[9]
    # Scenes of 2-3 digits holding a tail class (6-9): most also hold a head class (0-2).
    rare = (s.presence[:, 6:].sum(1) > 0) & (s.valid.sum(1) >= 2)
    assert rare.sum() > 20 and (s.presence[rare, :3].sum(1) > 0).mean() > 0.6


def test_validation_and_test_are_balanced(scenes):
    for split in (scenes.val, scenes.test):
        n_c = split.counts.sum(0)
        assert n_c.max() - n_c.min() <= 1, n_c
        # Every pool image is used about equally often.
        ids = split.digit_ids[split.valid]
        uses = np.bincount(ids)[np.unique(ids)]
        assert uses.max() - uses.min() <= 1


def test_scarce_tail_keeps_a_couple_of_distinct_images_and_diverse_keeps_all(scenes):
    distinct = [len(np.unique(scenes.train.digit_ids[scenes.train.classes == c]
                              [scenes.train.valid[scenes.train.classes == c]]))
                for c in range(10)]
    assert distinct[8] <= 2 and distinct[9] <= 2, distinct
    assert [len(p) for p in scenes.pools["train"]][-2:] == [2, 2]
    diverse = make_scenes(3, tail="diverse", **SMALL)
    assert all(len(p) > 80 for p in diverse.pools["train"])
    # The same digit pools before the tail is cut: scarce keeps a prefix of diverse's.
    for a, b in zip(scenes.pools["train"], diverse.pools["train"]):
        np.testing.assert_array_equal(a, b[:len(a)])


def _check_labels(s, threshold=0.25):
    n, m = s.classes.shape
    np.testing.assert_array_equal(
        s.counts, np.stack([np.bincount(s.classes[i][s.valid[i]], minlength=10)
                            for i in range(n)]))
    np.testing.assert_array_equal(s.presence, (s.counts > 0).astype(np.int32))
    assert np.all(s.valid.sum(1) >= 1) and np.all(s.valid.sum(1) <= 3)
    # Valid rows come first.
    assert np.all(np.diff(s.valid.astype(int), axis=1) <= 0)
    np.testing.assert_array_equal(s.semantic > 0, s.instances > 0)
    for i in range(n):
        for k in range(m):
            pix = s.instances[i] == k + 1
            if not s.valid[i, k]:
                assert not pix.any()
                np.testing.assert_array_equal(s.boxes[i, k], 0)
                continue
            assert pix.any()
            assert np.all(s.semantic[i][pix] == s.classes[i, k] + 1)
            ys, xs = np.nonzero(pix)
            np.testing.assert_array_equal(
                s.boxes[i, k], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        # Stroke pixels are bright; the rest of the box region is dimmer than the threshold
        # of its digit.
        assert np.all(s.images[i, ..., 0][s.semantic[i] > 0] > 0)
        assert set(np.unique(s.semantic[i])) - {0} == set(np.flatnonzero(s.presence[i]) + 1)


def test_masks_boxes_and_counts_agree(scenes):
    for split in (scenes.train, scenes.test):
        _check_labels(split)
    free = make_scenes(0, num_train=50, num_val=20, num_test=20, layout="free", canvas=32)
    _check_labels(free.train)
    big = make_scenes(0, num_train=20, num_val=20, num_test=20, digit_scale=2, canvas=48)
    _check_labels(big.train)
    assert big.train.images.shape == (20, 48, 48, 1)


def test_objects_do_not_overlap_and_fill_their_slots(scenes):
    s = scenes.train
    # Slots: each valid box lies inside one 8x8 cell of the 3x3 grid, one object per cell.
    for i in range(len(s.valid)):
        b = s.boxes[i][s.valid[i]]
        cells = set()
        for x1, y1, x2, y2 in b:
            cy, cx = int(y1) // 8, int(x1) // 8
            assert (y2 - 1) // 8 == cy and (x2 - 1) // 8 == cx
            cells.add((cy, cx))
        assert len(cells) == len(b)


def test_largest_remainder_sums_and_bad_arguments():
    out = generate.largest_remainder(7, np.array([1.0, 1.0, 1.0]))
    np.testing.assert_array_equal(out, [3, 2, 2])
    with pytest.raises(ValueError, match="tail"):
        make_scenes(0, tail="long")
    with pytest.raises(ValueError, match="canvas"):
        make_scenes(0, canvas=12, num_train=10, num_val=10, num_test=10)
    with pytest.raises(ValueError, match="layout"):
        make_scenes(0, layout="grid")
