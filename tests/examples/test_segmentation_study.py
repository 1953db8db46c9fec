"""The segmentation study (examples/segmentation): its helpers against hand-worked values,
its protocol (knobs chosen without the test split, training a pure function of the key), the
saved results against their own runs, and a smoke run of the command line."""

import dataclasses
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("flax")
pytest.importorskip("sklearn")

from examples.segmentation import main as study_main  # noqa: E402
from examples.segmentation import train  # noqa: E402
from jbalance import losses  # noqa: E402

RESULTS = pathlib.Path(train.__file__).parent / "results.json"  # scarce tail
RESULTS_DIVERSE = RESULTS.with_name("results_diverse.json")
# Two images of 100 pixels over 3 classes: class 1 only in image 0, class 2 only in image 1.
COUNTS = np.array([[90, 10, 0], [80, 0, 20]])
# Hand-worked: f = pixels of c / pixels of the images holding c = (170/200, 10/100, 20/100);
# median 0.2. ENet: p = (0.85, 0.05, 0.10), w = 1 / ln(1.02 + p).
MEDIAN_FREQUENCY = np.array([0.2 / 0.85, 2.0, 1.0])
ENET = 1.0 / np.log(1.02 + np.array([0.85, 0.05, 0.10]))
# The methods the quick tests train: one compiled step shared by all of them.
QUICK = ("ce", "logit_adjusted")


def test_fallback_pixel_class_weights_by_hand():
    np.testing.assert_allclose(
        train.fallback_pixel_class_weights(COUNTS, method="median_frequency"),
        MEDIAN_FREQUENCY, rtol=1e-12)
    np.testing.assert_allclose(train.fallback_pixel_class_weights(COUNTS, method="enet"),
                               ENET, rtol=1e-12)


@pytest.mark.skipif(not hasattr(losses, "pixel_class_weights"),
                    reason="jbalance.losses.pixel_class_weights not public yet")
@pytest.mark.parametrize("method,want", [("median_frequency", MEDIAN_FREQUENCY),
                                         ("enet", ENET)])
def test_study_uses_library_pixel_class_weights(method, want):
    # Once the library has it, the study's weights are the library's: still the hand values.
    np.testing.assert_allclose(train.pixel_class_weights(COUNTS, method), want, rtol=1e-5)


def test_pixel_counts_and_semantic_from_instances_by_hand():
    sem = np.array([[[0, 3], [3, 3]], [[0, 0], [0, 1]]])
    np.testing.assert_array_equal(train.pixel_counts(sem, 4), [[1, 0, 0, 3], [3, 1, 0, 0]])
    ids = jnp.array([[[0, 1], [2, 4]]], jnp.int32)  # rows 0, 1 and 3 of 4
    classes = jnp.array([[7, 0, 5, 9]], jnp.int32)
    np.testing.assert_array_equal(train._semantic_from_instances(ids, classes),
                                  [[[0, 8], [1, 10]]])


def test_image_weights_are_the_rarest_digit():
    table = jnp.array([0.1, 0.5, 1.0], jnp.float32)
    counts = jnp.array([[2, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]], jnp.int32)
    np.testing.assert_allclose(train._image_weights(counts, table), [0.1, 0.5, 1.0, 0.0])


@pytest.mark.slow  # two solver compiles
def test_solver_probabilities_favour_images_with_rare_digits():
    data = train.load_seed(0, train._data_cfg(train.SMOKE))
    uniform = train.sampler_probs("uniform", data, max_repeat=4)
    np.testing.assert_allclose(uniform, 1 / len(uniform))
    plan = train.sampler_probs("plan_instances", data, max_repeat=4)
    assert plan.min() > 0  # plan's default, min_repeat=1, keeps every image
    for sampler in ("solver_pixels", "solver_instances", "plan_instances"):
        p = train.sampler_probs(sampler, data, max_repeat=4)
        assert p.min() >= 0 and np.isclose(p.sum(), 1.0, rtol=1e-5)
        counts = data["train_counts"]
        rare = counts[:, 7:].sum(1) > 0
        head_only = (counts[:, 0] > 0) & (counts[:, 1:].sum(1) == 0)
        assert p[rare].mean() > p[head_only].mean()


# The CI preset: runs first, so it pays the one compile the next two tests reuse.
def test_smoke_preset_runs_and_saves_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert study_main.main(["--preset", "smoke", "--steps", "10", "--methods", *QUICK,
                            "--no-timing", "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert [r["method"] for r in saved["results"]] == list(QUICK)
    la = saved["results"][1]
    assert set(la["validation"]) == {"tau=0.5", "tau=1.0", "tau=2.0"}
    assert la["chosen"] == max(la["validation"], key=la["validation"].get)
    run = la["runs"][0]
    assert len(run["iou"]) == train.NUM_CLASSES and 0.0 <= run["miou"] <= 1.0
    assert "mIoU - CE" in capsys.readouterr().out


def _smoke_cfg() -> train.Config:
    return dataclasses.replace(train.SMOKE, steps=10).for_methods(QUICK)


def test_training_is_a_pure_function_of_the_key():
    cfg = _smoke_cfg()
    data = train.load_seed(0, train._data_cfg(cfg))
    d = train.device_train(data, train.sampler_probs("uniform", data, max_repeat=4))
    ids, knobs = train.method_ids("logit_adjusted", cfg), train.knobs_for(data, tau=1.0)
    a, b, c = (train.train(jax.random.key(k), d, ids, knobs, cfg) for k in (0, 0, 1))
    leaves = jax.tree.leaves
    assert all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b)))
    assert not all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(c)))


def test_knobs_are_chosen_without_the_test_split(monkeypatch):
    cfg = _smoke_cfg()
    first = train.run_method("logit_adjusted", [0], cfg)
    original = train.load_seed

    def scrambled(seed, data_cfg):
        d = dict(original(seed, data_cfg))
        rng = np.random.default_rng(1)
        d["test_semantic"] = rng.integers(0, train.NUM_CLASSES, d["test_semantic"].shape)
        return d

    monkeypatch.setattr(train, "load_seed", scrambled)
    second = train.run_method("logit_adjusted", [0], cfg)
    assert second["chosen"] == first["chosen"]
    assert second["validation"] == first["validation"]
    assert second["runs"][0]["miou"] != first["runs"][0]["miou"]


@pytest.mark.parametrize("path, tail", [(RESULTS, "scarce"), (RESULTS_DIVERSE, "diverse")])
def test_saved_results_are_consistent(path, tail):
    if not path.exists():
        pytest.skip(f"examples/segmentation/{path.name} not written yet")
    saved = json.loads(path.read_text())
    assert saved["config"]["tail"] == tail
    assert len(saved["seeds"]) >= 5
    base = {r["seed"]: r["miou"] for r in saved["results"][0]["runs"]}
    assert saved["results"][0]["method"] == "ce"
    for rec in saved["results"]:
        assert rec["method"] in train.METHODS
        assert [r["seed"] for r in rec["runs"]] == saved["seeds"]
        assert rec["chosen"] == max(rec["validation"], key=rec["validation"].get)
        # The chosen candidate's validation score is the mean of its runs' validation mIoU.
        np.testing.assert_allclose(np.mean([r["val_miou"] for r in rec["runs"]]),
                                   rec["validation"][rec["chosen"]], rtol=1e-6)
        d = train.paired_deltas(saved["results"])[rec["method"]]
        np.testing.assert_allclose(d["per_seed"],
                                   [r["miou"] - base[r["seed"]] for r in rec["runs"]])


@pytest.mark.slow
def test_smoke_preset_every_available_method():
    names = [n for n in train.METHODS if train.available(n)]
    results = train.run_study(names, [0], dataclasses.replace(train.SMOKE, steps=5), log=None)
    assert [r["method"] for r in results] == names
    for rec in results:
        assert np.isfinite(rec["runs"][0]["miou"])


@pytest.mark.slow
def test_augment_branches_keep_images_and_labels_in_step():
    # By construction: every pixel's image value encodes its label, so after any mask
    # augmentation the label of each counted pixel must still be read off its pixel value.
    kinds = tuple(k for k in train.AUGMENT_NEEDS if all(map(train._has, train.AUGMENT_NEEDS[k])))
    data = train.load_seed(0, train._data_cfg(train.SMOKE))
    b = 8
    batch = {"images": jnp.asarray(data["train_semantic"][:b, ..., None], jnp.float32),
             "semantic": jnp.asarray(data["train_semantic"][:b], jnp.int32),
             "instances": jnp.asarray(data["train_instances"][:b]),
             "classes": jnp.asarray(data["train_classes"][:b]),
             "valid": jnp.asarray(data["train_valid"][:b]),
             "counts": jnp.asarray(data["train_counts"][:b])}
    knobs = train.knobs_for(data, paste_prob=1.0, instances="rare")
    for kind in kinds:
        images, semantic = jax.jit(train._augment_branch(kind))(jax.random.key(3), batch, knobs)
        counted = semantic != train.IGNORE
        np.testing.assert_array_equal(np.asarray(images[..., 0])[counted],
                                      np.asarray(semantic)[counted], err_msg=kind)
        assert counted.any(), kind


@pytest.mark.slow
def test_time_loop_vs_scan_reports_both():
    t = train.time_loop_vs_scan(train.SMOKE, batch_size=4, steps=2, repeats=1)
    assert t["loop_ms"] > 0 and t["scan_ms"] > 0


@pytest.mark.slow  # spawns two processes, each compiling the step
def test_parallel_seeds_give_the_serial_results():
    cfg = dataclasses.replace(train.SMOKE, steps=5)
    serial = train.run_study(QUICK, [0, 1], cfg, log=None)
    parallel = train.run_study(QUICK, [0, 1], cfg, log=None, workers=2)
    for a, b in zip(serial, parallel):
        assert (a["chosen"], a["validation"], a["runs"]) == (b["chosen"], b["validation"],
                                                             b["runs"])
