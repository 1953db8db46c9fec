"""The multi-label scenes study (examples/multilabel): its samplers against their papers'
definitions, its Copy-Paste by construction, and a smoke run of the whole study."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("flax")
pytest.importorskip("sklearn")

from examples.multilabel import main as study_main  # noqa: E402
from examples.multilabel import train  # noqa: E402

# Presence of 8 images over 3 labels: label 0 in 6 images, label 1 in 3, label 2 in 1.
Y = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0], [1, 0, 1],
              [0, 1, 0], [0, 0, 0]], np.int32)


def test_class_aware_probs_pick_a_class_then_an_image():
    p = train.class_aware_probs(Y)
    # Hand-worked: p_i = (1/3) sum_{c in i} 1/|I_c|, |I| = (6, 3, 1); image 7 holds nothing.
    want = np.array([1 / 6, 1 / 6, 1 / 6, 1 / 6 + 1 / 3, 1 / 6 + 1 / 3, 1 / 6 + 1,
                     1 / 3, 0.0]) / 3
    np.testing.assert_allclose(p, want / want.sum(), rtol=1e-6)


def test_repeat_factors_max_and_mean_by_hand():
    # f = (6/8, 3/8, 1/8); t = 1: r_c = max(1, sqrt(1/f)) = (1.1547, 1.63299, 2.82843).
    rc = np.sqrt(1 / np.array([6 / 8, 3 / 8, 1 / 8]))
    r_max = train.repeat_factors(Y, threshold=1.0, aggregation="max")
    r_mean = train.repeat_factors(Y, threshold=1.0, aggregation="mean")
    np.testing.assert_allclose(r_max, [rc[0]] * 3 + [rc[1]] * 2 + [rc[2], rc[1], 1.0],
                               rtol=1e-6)
    np.testing.assert_allclose(r_mean, [rc[0]] * 3 + [(rc[0] + rc[1]) / 2] * 2
                               + [(rc[0] + rc[2]) / 2, rc[1], 1.0], rtol=1e-6)


def test_mlros_clones_minority_bags_until_balanced_or_budget():
    # IRLbl = (1, 2, 6), MeanIR = 3: only label 2 is a minority label; its bag is image 5.
    rng = np.random.default_rng(0)
    r = train.mlros_repeats(rng, Y, percent=25)  # 2 clones allowed
    np.testing.assert_array_equal(r, [1, 1, 1, 1, 1, 3, 1, 1])
    # With a larger budget the bag leaves once IRLbl(2) <= MeanIR: 6 + k / (1 + k) <= 3
    # at k = 2 (label 0's count grows with each clone of image 5): (6+2)/(1+2) = 2.67.
    r = train.mlros_repeats(np.random.default_rng(0), Y, percent=100)
    np.testing.assert_array_equal(r, [1, 1, 1, 1, 1, 3, 1, 1])
    # Never drops an image, clones only images holding a minority label.
    y = (np.random.default_rng(1).random((200, 6)) < np.array([.6, .3, .1, .05, .02, .01]))
    r = train.mlros_repeats(np.random.default_rng(2), y, percent=25)
    assert r.min() >= 1 and r.sum() - len(y) <= 50
    n = y.sum(0)
    irl = n.max() / np.maximum(n, 1)
    minority = (irl > irl[n > 0].mean()) & (n > 0)
    assert np.all(y[r > 1][:, minority].any(1))


def test_average_precision_equals_scikit_learn():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    y = (rng.random((300, 4)) < 0.3).astype(np.int32)
    s = np.round(rng.normal(size=(300, 4)) + y, 1)  # rounded: ties included
    want = [average_precision_score(y[:, c], s[:, c]) for c in range(4)]
    np.testing.assert_allclose(train.average_precision(y, s), want, rtol=1e-5)


def test_copy_paste_fills_an_empty_slot_with_the_donor_and_adds_its_class():
    key = jax.random.key(0)
    images = jnp.zeros((4, 24, 24, 1), jnp.float32)
    targets = jnp.zeros((4, 10), jnp.float32)
    empty = jnp.zeros((4, 9), bool).at[:, 4].set(True)  # only the centre slot is empty
    bank = jnp.arange(3 * 64, dtype=jnp.float32).reshape(3, 8, 8, 1) + 1.0
    classes = jnp.array([2, 5, 7], jnp.int32)
    w = jnp.array([0.0, 1.0, 0.0], jnp.float32)  # always the class-5 donor
    copy_paste = jax.jit(train.copy_paste)  # one compile instead of op-by-op dispatch
    out, t = copy_paste(key, images, targets, empty, bank, classes, w,
                              paste_prob=jnp.float32(1.0))
    np.testing.assert_array_equal(out[:, 8:16, 8:16], np.broadcast_to(bank[1], (4, 8, 8, 1)))
    assert float(out.sum()) == 4 * float(bank[1].sum())
    np.testing.assert_array_equal(t, np.eye(10, dtype=np.float32)[[5] * 4])
    none, t0 = copy_paste(key, images, targets, empty, bank, classes, w,
                                paste_prob=jnp.float32(0.0))
    assert float(none.sum()) == 0.0 and float(t0.sum()) == 0.0
    full, _ = copy_paste(key, images, targets, jnp.zeros((4, 9), bool), bank, classes,
                               w, paste_prob=jnp.float32(1.0))
    assert float(full.sum()) == 0.0  # no empty slot: nothing pasted


def test_every_method_is_well_formed():
    for name, m in train.METHODS.items():
        assert m.loss in train.LOSSES and m.augment in train.AUGMENTS, name
        assert m.sampler in train.SAMPLERS, name
        assert train.grid(m), name


@pytest.mark.parametrize("names", [
    ("class_aware", "mlros"),
    # The plan and the library's repeat factors compile the solver: the full suite only.
    pytest.param(("plan", "rfs", "dataeval_rule"), marks=pytest.mark.slow)])
def test_samplers_on_real_scenes_keep_what_they_should(names):
    cfg = train.PRESETS["smoke"]
    y = train.load_seed(0, cfg)["train_labels"]
    for name in names:
        m = train.METHODS[name]
        for _, over in train.grid(m):
            p = train.sampler_probs(m, y, 0, over)
            assert p.shape == (len(y),) and abs(float(p.sum()) - 1) < 1e-5, name
            if name in ("rfs", "mlros", "dataeval_rule", "class_aware"):
                # Oversamplers keep every image that holds a class.
                assert np.all(p[y.sum(1) > 0] > 0), name


@pytest.mark.slow
def test_dataeval_class_balance_selects_a_full_size_list():
    pytest.importorskip("dataeval")
    y = train.load_seed(0, train.PRESETS["smoke"])["train_labels"]
    for method in ("global", "interclass"):
        r = train.dataeval_repeats(y, method, 0)
        assert r.sum() == len(y)
        np.testing.assert_array_equal(r, train.dataeval_repeats(y, method, 0))


@pytest.mark.slow
def test_smoke_study_runs_and_knobs_are_chosen_without_the_test_split(tmp_path):
    out = tmp_path / "r.json"
    assert study_main.main(["--preset", "smoke", "--methods", "bce", "asl", "mixup_aware",
                            "copy_paste_aware", "plan", "plan_deferred", "--json",
                            str(out)]) == 0
    saved = json.loads(out.read_text())
    names = [r["method"] for r in saved["results"]]
    assert names[:6] == ["bce", "asl", "mixup_aware", "copy_paste_aware", "plan",
                         "plan_deferred"] and "recipe" in names
    for rec in saved["results"]:
        assert 0.0 <= rec["runs"][0]["map"] <= 1.0
    # Scrambling the test labels leaves every knob choice as it was.
    cfg = train.PRESETS["smoke"]
    data = train.stack_seeds([0], cfg)
    m = train.METHODS["asl"]
    a = train.run_method("asl", m, [0], cfg, data)
    data = dict(data, test_labels=np.random.default_rng(0).permutation(data["test_labels"],
                                                                       axis=1))
    b = train.run_method("asl", m, [0], cfg, data)
    assert a["chosen"] == b["chosen"] and a["validation"] == b["validation"]


@pytest.mark.slow
def test_conv_loop_runner_trains():
    cfg = train.PRESETS["smoke_conv"]
    data = train.stack_seeds([0], cfg)
    rec = train.run_method("bce", train.METHODS["bce"], [0], cfg, data)
    assert np.isfinite(rec["candidates"][0]["final_loss"]).all()
    assert 0.0 <= rec["runs"][0]["map"] <= 1.0
