"""detectron2's own sampler test cases, run against jbalance's repeat factors and epochs.

Ported from detectron2, ``tests/data/test_sampler.py`` (Apache-2.0, Copyright Facebook, Inc.
and its affiliates): ``TestRepeatFactorTrainingSampler.
test_repeat_factors_from_category_frequency`` (three images, threshold 0.5, expected factors
``[sqrt(3/2), 1, 1]``), ``TestSamplerDeterministic.test_training_sampler_seed`` (the same
seed gives the same stream, other global seeding does not matter) and ``test_to_iterable``
(an epoch of factor-1 images visits every image once; several loader workers neither
duplicate nor lose data — here: disjoint shards that together cover the epoch) are written
here as our own cases. No detectron2 code is copied.
"""

import math

import numpy as np

from jbalance import resample, sampling


def test_repeat_factors_from_category_frequency():
    # Image 0 holds classes 0 and 1, image 1 class 0, image 2 nothing.
    counts = np.array([[1, 1], [1, 0], [0, 0]])
    r = resample.repeat_factor_sampling(counts, threshold=0.5)
    np.testing.assert_allclose(r, [math.sqrt(3 / 2), 1.0, 1.0], rtol=1e-6)


def test_same_seed_same_stream_and_global_seeding_ineffective():
    w = np.ones(30)
    np.random.seed(42)
    a = [sampling.epoch_indices(7, w, epoch=e) for e in range(3)]
    np.random.seed(999)  # must not matter: the sampler takes its seed explicitly
    b = [sampling.epoch_indices(7, w, epoch=e) for e in range(3)]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], a[1])  # a new order each epoch


def test_epoch_of_unit_factors_visits_every_image_once():
    w = np.ones(100)
    idx = sampling.epoch_indices(10, w, epoch=0)
    assert sorted(idx.tolist()) == list(range(100))


def test_shards_do_not_duplicate_or_lose_data():
    w = np.ones(100)
    shards = [sampling.epoch_indices(10, w, epoch=0, shard_index=i, shard_count=2)
              for i in range(2)]
    together = np.concatenate(shards)
    assert set(together.tolist()) == set(range(100))
    assert len(set(shards[0].tolist()) & set(shards[1].tolist())) == 0
