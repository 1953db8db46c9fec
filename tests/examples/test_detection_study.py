"""The detection scenes study (examples/detection): target encoding and decoding by hand,
the samplers against the library, and a smoke run of the whole study."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("flax")
pytest.importorskip("sklearn")

from examples.detection import main as study_main  # noqa: E402
from examples.detection import train  # noqa: E402
from jbalance import resample  # noqa: E402


def test_encode_puts_each_box_at_its_centre_cell_by_hand():
    # A 10x6 box centred at (6, 9) -> cell (x=1, y=2) of a 6x6 grid of 4-pixel cells.
    bx = jnp.array([[[1.0, 6.0, 11.0, 12.0], [0.0, 0.0, 0.0, 0.0]]])
    t = train.encode(bx, jnp.array([[7, 0]], jnp.int32), jnp.array([[True, False]]),
                     jnp.array([[0.6, 1.0]]), 6)
    heat = np.zeros((1, 6, 6, 10))
    heat[0, 2, 1, 7] = 0.6
    np.testing.assert_allclose(t.heat, heat)
    assert int(t.cls[0, 2, 1]) == 7 and int((t.cls != 10).sum()) == 1
    np.testing.assert_allclose(t.reg[0, 2, 1], [6 / 4 - 1, 9 / 4 - 2, np.log(10 / 4),
                                                np.log(6 / 4)], rtol=1e-6)


def test_decode_inverts_the_encoding():
    out = np.full((1, 6, 6, 15), -20.0, np.float32)
    out[0, 2, 1, 7] = 5.0  # class 7 at cell (y=2, x=1)
    ox, oy = 0.5, 0.25
    out[0, 2, 1, 11:13] = np.log([ox / (1 - ox), oy / (1 - oy)])  # sigmoid^-1
    out[0, 2, 1, 13:15] = np.log([10 / 4, 6 / 4])
    det = train.decode(jnp.asarray(out), jnp.int32(0), k=3)
    assert int(det.classes[0, 0]) == 7
    np.testing.assert_allclose(det.boxes[0, 0], [1.0, 6.0, 11.0, 12.0], atol=1e-4)
    np.testing.assert_allclose(det.scores[0, 0], 1 / (1 + np.exp(-5.0)), rtol=1e-5)


def test_sampler_probs_follow_their_definitions():
    counts = np.array([[2, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0]], np.int32)
    ca = train.sampler_probs(train.METHODS["class_aware"], counts, 0, {})
    # Hand-worked: images holding class (0, 1, 2) = (4, 1, 1); p_i = (1/3) sum 1/n_c.
    want = np.array([1 / 4, 1 / 4, 1 / 4 + 1, 1, 1 / 4]) / 3
    np.testing.assert_allclose(ca, want, rtol=1e-6)
    over = {"rfs": (("threshold", 0.5), ("aggregation", "max"))}
    r = train.sampler_probs(train.METHODS["rfs"], counts, 0, over)
    rc = np.maximum(1, np.sqrt(0.5 / np.array([4 / 5, 1 / 5, 1 / 5])))
    w = np.array([rc[0], rc[0], rc[1], rc[2], rc[0]])
    np.testing.assert_allclose(r, w / w.sum(), rtol=1e-6)
    p1 = train.sampler_probs(train.METHODS["plan"], counts, 0, {})
    assert np.all(p1 > 0)  # plan's default, min_repeat=1, never drops an image
    p0 = train.sampler_probs(train.METHODS["plan_min0"], counts, 0, {})
    w0 = np.asarray(resample.plan(counts, min_repeat=0, seed=0).repeats, np.float64)
    np.testing.assert_allclose(p0, w0 / w0.sum(), rtol=1e-6)


@pytest.mark.slow  # one compile of every branch: ~1-2 min on a loaded 2-core CPU
def test_smoke_study_runs_and_writes_json(tmp_path):
    out = tmp_path / "r.json"
    assert study_main.main(["--preset", "smoke", "--methods", "focal", "seesaw", "mixup",
                            "copy_paste_aware", "plan", "--no-combine",
                            "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    res = saved["runs"]["scarce"]["results"]
    assert [r["method"] for r in res] == ["focal", "seesaw", "mixup", "copy_paste_aware",
                                          "plan"]
    for r in res:
        for run in r["runs"]:
            assert 0.0 <= run["map"] <= 1.0 and len(run["per_class_ap"]) == 10
    assert "| sigmoid focal loss (baseline) |" in study_main.render(res)


def test_combinations_take_the_best_validated_augmentation_and_sampler():
    def rec(name, val):
        label, over = train.grid(train.METHODS[name])[-1]
        return {"chosen": label, "validation": {label: val}, "candidates": [
            {"label": label, "over": over}]}
    results = {"focal": rec("focal", 0.3), "seesaw": rec("seesaw", 0.5),
               "mixup": rec("mixup", 0.2), "copy_paste_aware": rec("copy_paste_aware", 0.4),
               "plan": rec("plan", 0.35), "class_aware": rec("class_aware", 0.45)}
    combos = train.combinations(results)
    assert set(combos) == {"copy_paste_aware+class_aware", "seesaw+class_aware"}
    cp = combos["copy_paste_aware+class_aware"]
    assert (cp.loss, cp.augment, cp.sampler) == ("focal", "copy_paste_aware", "class_aware")
    assert dict(cp.grid) == {"paste_prob": (1.0,), "schedule": ("deferred",)}
    ss = combos["seesaw+class_aware"]
    assert (ss.loss, ss.augment, ss.sampler) == ("seesaw", "none", "class_aware")


RESULTS = train.__file__.rsplit("/", 1)[0] + "/results.json"


def test_saved_results_are_consistent():
    import pathlib
    path = pathlib.Path(RESULTS)
    if not path.exists():
        pytest.skip("examples/detection/results.json not written yet")
    saved = json.loads(path.read_text())
    for tail, run in saved["runs"].items():
        assert run["config"]["tail"] == tail and len(run["seeds"]) >= 5
        results = run["results"]
        assert results[0]["method"] == "focal"
        base = {r["seed"]: r["map"] for r in results[0]["runs"]}
        deltas = train.paired_deltas(results)
        for rec in results:
            assert [r["seed"] for r in rec["runs"]] == run["seeds"]
            # The knob is the best mean validation AP; its test runs are the ones reported.
            assert rec["chosen"] == max(rec["validation"], key=rec["validation"].get)
            chosen = next(c for c in rec["candidates"] if c["label"] == rec["chosen"])
            assert [r["map"] for r in chosen["test"]] == [r["map"] for r in rec["runs"]]
            np.testing.assert_allclose(np.mean([v["map"] for v in chosen["val"]]),
                                       rec["validation"][rec["chosen"]], rtol=1e-6)
            np.testing.assert_allclose(deltas[rec["method"]]["per_seed"],
                                       [r["map"] - base[r["seed"]] for r in rec["runs"]])
