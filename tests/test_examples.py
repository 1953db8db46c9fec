"""Smoke tests of the long-tailed digits study in examples/long_tail (flax's train_test shape)."""

import dataclasses
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
    assert data["train_images"].shape == (counts.sum(), 8, 8, 1)
    assert 0.0 <= data["train_images"].min() and data["train_images"].max() <= 1.0
    # Train and test images are distinct examples (no leakage through the split).
    train_rows = {r.tobytes() for r in data["train_images"]}
    test_rows = [r.tobytes() for r in data["test_images"]]
    assert sum(r in train_rows for r in test_rows) <= 5  # digits holds a few exact duplicates


def test_train_step_is_pure():
    cfg = train.SMOKE  # the smoke run below reuses this compiled step
    data = train.load_digits_long_tail(1)
    images, labels = jnp.asarray(data["train_images"]), jnp.asarray(data["train_labels"])
    batch = train.sample_batch(jax.random.key(0), jnp.arange(labels.shape[0]), images, labels,
                               batch_size=cfg.batch_size)
    batch["class_weights"] = jnp.ones(10, jnp.float32)

    def fresh():
        return train.init_state(jax.random.key(3), cfg)

    p1, _, l1 = train.train_step(*fresh(), jax.random.key(5), batch, cfg=cfg)
    p2, _, l2 = train.train_step(*fresh(), jax.random.key(5), batch, cfg=cfg)
    p0, _ = fresh()
    assert float(l1) == float(l2) and np.isfinite(float(l1))
    jax.tree.map(np.testing.assert_array_equal, p1, p2)
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)), p1, p0))
    assert all(moved)  # every parameter got an update


def test_resampling_pool_balances_classes():
    if "resample" in train.pending_methods():
        pytest.skip(train.pending_methods()["resample"])
    data = train.load_digits_long_tail(0)
    pool = train.sampling_pool(data, train.Config(method="resample"))
    seen = np.bincount(data["train_labels"][pool], minlength=10)
    ratio_before = data["counts"].max() / data["counts"].min()
    assert seen.min() >= 1  # the solver's guard: no class is erased
    assert seen.max() / seen.min() < ratio_before / 4


def test_smoke_every_method(tmp_path):
    out, js = tmp_path / "results.md", tmp_path / "results.json"
    assert study_main.main(["--smoke", "--out", str(out), "--json", str(js)]) == 0
    table = out.read_text()
    pending = train.pending_methods()
    for method, label in train.METHODS.items():
        row = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
        assert ("pending" in row) == (method in pending), row
    runs = {r["method"]: r for r in json.loads(js.read_text())["results"]}
    assert study_main.main(["--table-from", str(js)]) == 0
    # Even 60 steps of plain cross-entropy must beat chance (10%) clearly on the balanced test.
    assert runs["ce"]["accuracy"] > 0.4, runs["ce"]
    for r in runs.values():
        if "pending" not in r:
            assert np.isfinite(r["final_loss"]), r
            assert 0.0 <= r["worst_class_recall"] <= r["balanced_accuracy"] <= 1.0


def test_unknown_method_raises():
    with pytest.raises(ValueError, match="method"):
        train.train_and_evaluate(dataclasses.replace(train.Config(), method="nope"), 0)
