"""Smoke tests of the long-tailed digits study in examples/long_tail (flax's train_test shape)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("flax")
pytest.importorskip("sklearn")

from examples.long_tail import main as study_main  # noqa: E402
from examples.long_tail import train  # noqa: E402


def test_long_tail_split():
    counts = train.long_tail_counts(n_max=100, imbalance=100.0)
    assert counts[0] == 100 and counts[-1] == 1
    assert np.all(np.diff(counts) <= 0)
    data = train.load_digits_long_tail(0)
    np.testing.assert_array_equal(data["counts"], counts)
    np.testing.assert_array_equal(np.bincount(data["test_labels"]), np.full(10, 50))
    # The validation split is balanced too, and carved from the held-out images.
    np.testing.assert_array_equal(np.bincount(data["val_labels"]), np.full(10, 25))
    assert data["train_images"].shape == (counts.sum(), 8, 8, 1)
    assert 0.0 <= data["train_images"].min() and data["train_images"].max() <= 1.0
    # The three splits are distinct examples (no leakage; digits holds a few exact duplicates).
    rows = {k: [r.tobytes() for r in data[f"{k}_images"]] for k in ("train", "val", "test")}
    for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
        assert sum(r in set(rows[a]) for r in rows[b]) <= 5, (a, b)
    # Adding the validation split leaves the train and test splits as they were.
    old = train.load_digits_long_tail(0, val_per_class=0)
    np.testing.assert_array_equal(old["test_images"], data["test_images"])
    np.testing.assert_array_equal(old["train_labels"], data["train_labels"])
    with pytest.raises(ValueError, match="val_per_class"):
        train.load_digits_long_tail(0, val_per_class=100)


def _class_mass(probs, labels):
    return np.bincount(labels, weights=probs, minlength=10)


def test_sampling_probs_match_their_definition():
    data = train.load_digits_long_tail(0)
    y, n = data["train_labels"], data["counts"].astype(float)
    cfg = train.Config()
    # Independent reference: class j is drawn with probability n_j^q / sum_k n_k^q.
    for method, q in (("ce", 1.0), ("sqrt_sampling", 0.5), ("cb_sampling", 0.0)):
        mass = _class_mass(train._sampling_probs(method, y, cfg), y)
        np.testing.assert_allclose(mass, n ** q / (n ** q).sum(), rtol=1e-5, err_msg=method)
    # The solver's plan flattens the class totals without erasing a class.
    mass = _class_mass(train._sampling_probs("resample", y, cfg), y)
    assert mass.min() > 0 and mass.max() / mass.min() < (n.max() / n.min()) / 4


def test_every_method_is_well_formed():
    for name, m in train.METHODS.items():
        assert m.loss in train.LOSSES and m.augment in train.AUGMENTS, name
        assert m.sampler in train.SAMPLERS, name
        grid = train._grid(name)
        assert len(grid) == int(np.prod([len(v) for _, v in m.grid])), name
        for _, over in grid:  # every knob name is understood
            train.knobs_for(train.SMOKE, np.arange(1, 11), **over)
    assert [label for label, _ in train._grid("la_mixup")][:2] == [
        "tau=0.5, alpha=0.2", "tau=0.5, alpha=1.0"]


@pytest.mark.slow  # trains every method of the study (a subprocess-sized run)
def test_smoke_every_method(tmp_path):
    out, js = tmp_path / "results.md", tmp_path / "results.json"
    assert study_main.main(["--smoke", "--out", str(out), "--json", str(js)]) == 0
    table = out.read_text()
    for m in train.METHODS.values():
        assert any(line.startswith(f"| {m.label} |") for line in table.splitlines()), m.label
    saved = json.loads(js.read_text())["results"]
    assert [r["method"] for r in saved] == list(train.METHODS)
    assert study_main.main(["--table-from", str(js)]) == 0
    runs = {r["method"]: r["runs"][0] for r in saved}
    # Even 60 steps of plain cross-entropy must beat chance (10%) clearly on the balanced test.
    assert runs["ce"]["accuracy"] > 0.4, runs["ce"]
    for rec in saved:
        # The chosen knob is the best candidate on validation.
        assert rec["validation"][rec["chosen"]] == max(rec["validation"].values()), rec
        assert len(rec["validation"]) == len(train._grid(rec["method"]))
        r = rec["runs"][0]
        assert np.isfinite(r["final_loss"]), rec
        assert 0.0 <= r["worst_class_recall"] <= r["balanced_accuracy"] <= 1.0


def test_training_is_pure():
    # The smoke run above compiled this program (one seed, SMOKE): no new compile here.
    cfg = train.SMOKE
    data = train.stack_seeds([1], cfg)
    probs = np.stack([train._sampling_probs("ce", y, cfg) for y in data["train_labels"]])
    jdata = {k: jnp.asarray(data[k]) for k in ("train_images", "train_labels", "val_images",
                                                 "test_images")}
    jdata["probs"] = jnp.asarray(probs)
    knobs = train.knobs_for(cfg, data["counts"][0])

    def run(seed, method="logit_adjusted"):
        keys = jax.vmap(jax.random.key)(jnp.asarray([seed]))
        return train._train_seeds(keys, jdata, train.method_ids(method), jnp.asarray(False),
                                  knobs, cfg=cfg)

    a, b, c = run(3), run(3), run(4)
    jax.tree.map(np.testing.assert_array_equal, a, b)  # same key, same model
    assert not np.array_equal(a[1], c[1]) and np.isfinite(float(a[2][0]))
    # The method is a traced choice: another loss, another model, same compiled program.
    assert not np.array_equal(a[1], run(3, "ce")[1])


@pytest.mark.slow  # compiles the one-step program (~20 s on 2 cores); notebook 03 uses it
def test_train_step_matches_its_contract():
    # The one-step API used by notebooks/03_resampling.ipynb.
    cfg = train.SMOKE
    data = train.load_digits_long_tail(1)
    batch = {"image": jnp.asarray(data["train_images"][:cfg.batch_size]),
             "label": jnp.asarray(data["train_labels"][:cfg.batch_size])}
    p0, _ = train.init_state(jax.random.key(3), cfg)
    p1, _, loss = train.train_step(*train.init_state(jax.random.key(3), cfg),
                                   jax.random.key(5), batch, cfg=cfg)
    assert np.isfinite(float(loss))
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)), p1, p0))
    assert all(moved)  # every parameter got an update


def test_knobs_are_chosen_without_the_test_split():
    # Scrambling the test labels changes the test scores, never the choice (validation only).
    cfg = train.SMOKE
    data = train.stack_seeds([0], cfg)
    scrambled = dict(data, test_labels=(data["test_labels"] + 1) % 10)
    a = train.run_method("posthoc", [0], cfg, data)
    b = train.run_method("posthoc", [0], cfg, scrambled)
    assert a["chosen"] == b["chosen"] and a["validation"] == b["validation"]
    assert a["runs"][0]["accuracy"] != b["runs"][0]["accuracy"]


def test_unknown_method_raises():
    with pytest.raises(ValueError, match="method"):
        train.run_method("nope", [0], train.SMOKE)
