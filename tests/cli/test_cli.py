"""Tests for the ``jbalance`` command line: in-process for detail, a few subprocesses for the
real exit codes, output files and the demo (each subprocess that plans imports jax, so they
are few)."""

import csv
import inspect
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import jbalance.io as jio
from jbalance import cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def labels(tmp_path_factory):
    """A small imbalanced multi-label set as a wide CSV (class 'common' dominates)."""
    rng = np.random.default_rng(0)
    n = 60
    counts = np.zeros((n, 4), np.int32)
    counts[:, 0] = rng.integers(1, 4, n)
    counts[rng.choice(n, 15, replace=False), 1] = 1
    counts[rng.choice(n, 6, replace=False), 2] = 2
    counts[rng.choice(n, 3, replace=False), 3] = 1
    counts[-1] = 0
    path = tmp_path_factory.mktemp("labels") / "tags.csv"
    ids = [f"im{i:03d}" for i in range(n)]
    jio.write_label_set(path, jio.from_counts(counts, class_names=["common", "mid", "few",
                                                                   "rare"], image_ids=ids))
    return path


def _run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_table_json_and_plot(labels, tmp_path, capsys):
    code, out, err = _run(["inspect", labels], capsys)
    assert code == 0 and err == ""
    assert "common" in out and "advice:" in out and "(csv)" in out
    code, out, _ = _run(["inspect", labels, "--json", "--plot", tmp_path / "d.png"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["format"] == "csv" and doc["report"]["class_names"][3] == "rare"
    ls = jio.load(labels)
    assert doc["report"]["objects_per_class"] == ls.counts.sum(0).tolist()
    assert (tmp_path / "d.png").read_bytes()[:8] == PNG_MAGIC


def test_plan_writes_everything_and_matches_the_library(labels, tmp_path, capsys):
    from jbalance import resample

    out_csv, idx_txt, png = tmp_path / "plan.csv", tmp_path / "idx.txt", tmp_path / "p.png"
    code, out, err = _run(["plan", labels, "--lam", "0.01", "--max-repeat", "3", "--out",
                           out_csv, "--indices", idx_txt, "--plot", png, "--sweep", "--json",
                           "--steps", "100"], capsys)
    assert code == 0
    assert re.search(r"step \d+/100 +objective", err)  # progress goes to stderr
    # Not a terminal: plain lines. The compile is announced before the first step; the
    # sweep reports once per step (its 9 values of lam together), not once per lam.
    lines = err.splitlines()
    assert "solving: compiling" in lines[0]
    assert [ln.split("objective")[0].strip() for ln in lines if "step" in ln] == [
            "solving: step 50/100", "solving: step 100/100", "sweep: step 50/100",
            "sweep: step 100/100"]
    assert lines.index(next(ln for ln in lines if "sweep: compiling" in ln)) == 3
    assert all("over 9 lam" in ln for ln in lines if "sweep: step" in ln)
    doc = json.loads(out)  # stdout is pure JSON
    rows = list(csv.reader(out_csv.read_text().splitlines()))
    assert rows[0] == ["image_id", "repeats"]
    ls = jio.load(labels)
    assert [r[0] for r in rows[1:]] == ls.image_ids
    repeats = np.array([int(r[1]) for r in rows[1:]])
    assert repeats.min() >= 0 and repeats.max() <= 3
    # The CLI passes its options through: same answer as the library call.
    # plan's (and so the command's) default is min_repeat=1: oversampling only.
    sol = resample.solve(ls.counts, lam=0.01, max_repeat=3, num_steps=100, min_repeat=1)
    np.testing.assert_array_equal(repeats, np.asarray(sol.repeats))
    assert repeats.min() >= 1
    summ = resample.summary(ls.counts, repeats)
    assert doc["jbalance"]["size_after"] == summ.size_after == repeats.sum()
    assert doc["jbalance"]["dropped"] == summ.dropped
    assert doc["jbalance"]["ratio_after"] == pytest.approx(summ.ratio_after)
    assert doc["lam"] == pytest.approx(0.01)
    assert {"threshold", "ratio_after", "cv_after", "dropped", "duplicated"} <= set(doc["lvis"])
    assert doc["lvis"]["dropped"] == 0  # repeat factors are >= 1
    assert len(doc["sweep"]) == 9 and all("cv_after" in p for p in doc["sweep"])
    assert idx_txt.read_text().split() == [i for i, r in zip(ls.image_ids, repeats)
                                           for _ in range(r)]
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_plan_table_output_and_json_plan(labels, tmp_path, capsys):
    code, out, err = _run(["plan", labels, "--out", tmp_path / "plan.json", "--quiet",
                           "--steps", "100", "--min-repeat", "1"], capsys)
    assert code == 0 and err == ""  # quiet, and no image dropped: nothing on stderr
    for needle in ("before", "jbalance", "LVIS RFS", "max/min class ratio", "CV of class",
                   "images dropped", "images duplicated", "images per epoch"):
        assert needle in out
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert set(plan) == set(jio.load(labels).image_ids)


def test_data_errors_exit_1_with_one_line(tmp_path, labels, capsys, monkeypatch):
    bad = tmp_path / "bad.csv"
    bad.write_text("image_id,a\nx,1\ny,-3\n")
    code, out, err = _run(["inspect", bad], capsys)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and f"{bad}, line 3" in err and "negative" in err
    code, _, err = _run(["plan", tmp_path / "missing.json"], capsys)
    assert code == 1 and "no such file or directory" in err
    code, _, err = _run(["plan", labels, "--out", tmp_path / "nowhere" / "p.csv"], capsys)
    assert code == 1 and "does not exist" in err and "step" not in err  # fails before solving
    code, _, err = _run(["inspect", labels, "--include-crowd"], capsys)
    assert code == 1 and "COCO" in err
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = _run(["inspect", labels, "--plot", tmp_path / "x.png"], capsys)
    assert code == 1 and "matplotlib" in err and "jbalance[plot]" in err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("argv", [
    ["plan", "x.csv", "--lam", "-1"],
    ["plan", "x.csv", "--lam", "abc"],
    ["plan", "x.csv", "--max-repeat", "0"],
    ["plan", "x.csv", "--min-repeat", "2"],
    ["plan", "x.csv", "--min-repeat", "-1"],
    ["plan", "x.csv", "--target", "biggest"],
    ["inspect"],
    ["frobnicate"],
])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_no_command_is_a_usage_error(capsys):
    assert cli.main([]) == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["inspect"], ["plan"], ["demo"]])
def test_help_for_every_command(command, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([*command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: jbalance") and "--help" in out


# ------------------------------------------------------------------------------------------
# Subprocesses: the real console entry point, exit codes and the demo.


def _subprocess(args, cwd, timeout=240):
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)  # one CPU device is enough here and starts faster
    return subprocess.run([sys.executable, "-m", "jbalance", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_subprocess_exit_codes(labels, tmp_path):
    res = _subprocess(["--help"], tmp_path)
    assert res.returncode == 0 and "inspect" in res.stdout and "demo" in res.stdout
    res = _subprocess(["plan", labels, "--lam", "-1"], tmp_path)
    assert res.returncode == 2 and "usage:" in res.stderr
    (tmp_path / "dangling.json").write_text(json.dumps({
        "images": [{"id": 1}], "categories": [{"id": 1, "name": "a"}],
        "annotations": [{"id": 9, "image_id": 1, "category_id": 7}]}))
    res = _subprocess(["inspect", "dangling.json"], tmp_path)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().count("\n") == 0
    assert "dangling.json, annotations[0] (id 9)" in res.stderr
    res = _subprocess(["plan", labels, "--out", "plan.csv", "--json", "--steps", "50",
                       "--force"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["out"] == "plan.csv"
    assert (tmp_path / "plan.csv").read_text().startswith("image_id,repeats\n")


@pytest.mark.slow
def test_demo_runs_and_its_python_equivalent_gives_the_same_plan(tmp_path):
    from jbalance import resample

    res = _subprocess(["demo", "--out-dir", tmp_path / "demo"], tmp_path)
    assert res.returncode == 0, res.stderr
    for needle in ("person", "advice:", "LVIS RFS", "trade-off", "demo finished"):
        assert needle in res.stdout
    steps = inspect.signature(resample.plan).parameters["num_steps"].default
    assert re.search(rf"solving: step \d+/{steps} +objective", res.stderr)
    # The "Python equivalent" the demo prints, run here: the same repeat counts.
    assert "jbalance.resample.plan(ls.counts)" in res.stdout
    ls = jio.load(os.path.join(os.path.dirname(jio.__file__), "data", "voc0712_trainval.npz"))
    plan = resample.plan(ls.counts)
    rows = (tmp_path / "demo" / "plan.csv").read_text().splitlines()[1:]
    np.testing.assert_array_equal([int(r.split(",")[1]) for r in rows], plan.repeats)
    plan = (tmp_path / "demo" / "plan.csv").read_text().splitlines()
    assert plan[0] == "image_id,repeats" and len(plan) == 16551 + 1
    assert (tmp_path / "demo" / "plan.png").read_bytes()[:8] == PNG_MAGIC
    assert (tmp_path / "demo" / "distribution.png").read_bytes()[:8] == PNG_MAGIC


def test_plan_with_an_empty_class_and_a_background_image(tmp_path, capsys):
    path = tmp_path / "emp.csv"
    path.write_text("image_id,a,b,c\nx,1,0,0\ny,2,0,1\nz,0,0,0\nw,3,0,1\nv,1,0,0\n")
    code, out, _ = _run(["plan", path, "--quiet", "--steps", "50", "--out",
                         tmp_path / "p.csv"], capsys)
    assert code == 0
    assert "classes without any example, left out of the objective: b" in out
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0] == "image_id,repeats" and [r.split(",")[0] for r in rows[1:]] == \
        ["x", "y", "z", "w", "v"]


# ------------------------------------------------------------------------------------------
# One source of truth, and no output that loses data (issues 12 and 13).


def test_plan_defaults_come_from_the_library():
    from jbalance import resample

    lib = inspect.signature(resample.plan).parameters
    args = cli.build_parser().parse_args(["plan", "x.csv"])
    for option, name in [("lam", "lam"), ("max_repeat", "max_repeat"),
                         ("min_repeat", "min_repeat"), ("target", "target"),
                         ("steps", "num_steps"), ("lvis_threshold", "lvis_threshold"),
                         ("seed", "seed")]:
        assert getattr(args, option) == lib[name].default, option
    assert lib["num_steps"].default == inspect.signature(resample.solve).parameters[
            "num_steps"].default


def test_cli_imports_only_public_modules():
    source = inspect.getsource(cli)
    assert "_src" not in source


def test_plan_with_defaults_equals_the_library_plan(labels, tmp_path, capsys):
    from jbalance import resample

    code, _, _ = _run(["plan", labels, "--quiet", "--out", tmp_path / "p.csv"], capsys)
    assert code == 0
    rows = (tmp_path / "p.csv").read_text().splitlines()[1:]
    plan = resample.plan(jio.load(labels).counts)
    np.testing.assert_array_equal([int(r.split(",")[1]) for r in rows], plan.repeats)


def test_outputs_never_overwrite_inputs_or_each_other(labels, tmp_path, capsys):
    before = labels.read_bytes()
    for argv in (["--out", labels], ["--indices", labels], ["--image-list", labels],
                 ["--out", labels, "--force"]):
        code, _, err = _run(["plan", labels, "--quiet", *argv], capsys)
        assert code == 1 and "input" in err and err.count("\n") == 1, argv
    same = tmp_path / "p.csv"
    code, _, err = _run(["plan", labels, "--quiet", "--out", same, "--indices", same], capsys)
    assert code == 1 and "both write" in err and not same.exists()
    assert labels.read_bytes() == before


def test_existing_output_needs_force(labels, tmp_path, capsys):
    out = tmp_path / "p.csv"
    out.write_text("precious\n")
    code, _, err = _run(["plan", labels, "--quiet", "--out", out], capsys)
    assert code == 1 and "--force" in err and "step" not in err
    assert out.read_text() == "precious\n"
    code, _, _ = _run(["plan", labels, "--quiet", "--out", out, "--force"], capsys)
    assert code == 0 and out.read_text().startswith("image_id,repeats")
    png = tmp_path / "d.png"
    png.write_bytes(b"x")
    code, _, err = _run(["inspect", labels, "--plot", png], capsys)
    assert code == 1 and "--force" in err and png.read_bytes() == b"x"


def test_image_list_writes_the_planned_image_paths(tmp_path, capsys):
    from jbalance import resample

    coco = tmp_path / "c.json"
    coco.write_text(json.dumps({
            "images": [{"id": i, "file_name": f"im{i}.jpg"} for i in range(8)],
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
            "annotations": [{"id": k, "image_id": k % 8, "category_id": 1 if k < 11 else 2,
                             "bbox": [0, 0, 1, 1]} for k in range(13)]}))
    out = tmp_path / "train.txt"
    code, _, err = _run(["plan", coco, "--quiet", "--image-list", out], capsys)
    assert code == 0, err
    ls = jio.load(coco)
    plan = resample.plan(ls.counts)
    expect = [ls.image_paths[i] for i in resample.indices(plan.repeats)]
    assert out.read_text().splitlines() == expect
    code, _, err = _run(["plan", tmp_path / "x.csv", "--image-list", tmp_path / "t.txt"],
                        capsys)
    assert code == 1


def test_image_list_needs_image_paths(labels, tmp_path, capsys):
    code, _, err = _run(["plan", labels, "--quiet", "--image-list", tmp_path / "t.txt"],
                        capsys)
    assert code == 1 and "--image-list" in err and err.count("\n") == 1


class _Terminal:
    """A stderr stand-in that says it is a terminal and records what is written."""

    def __init__(self):
        self.text = ""

    def isatty(self):
        return True

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def test_progress_draws_one_updating_line_on_a_terminal():
    term = _Terminal()
    progress = cli._Progress(100, sweep_points=3, stream=term)
    progress.compiling("solving")
    progress(50, 2.0)
    progress(100, 1.5)
    for value in (1.0, 3.0, 2.0):  # one callback per lam of the sweep
        progress(50, value)
    progress.done()
    assert term.text.count("\n") == 1 and term.text.endswith("\n")  # one line, ended once
    frames = term.text.rstrip("\n").split("\r")[1:]
    assert [f.split("(")[0].strip() for f in frames] == [
            "solving: compiling with XLA ...", "solving: step 50/100  objective 2",
            "solving: step 100/100  objective 1.5", "sweep: compiling with XLA ...",
            "sweep: step 50/100  objective 1..3 over 3 lam"]
    assert len({len(f) for f in frames}) == 1  # each frame covers the one before


def test_progress_is_silent_when_quiet():
    term = _Terminal()
    progress = cli._Progress(10, stream=term, enabled=False)
    progress.compiling("solving")
    progress(10, 1.0)
    progress.done()
    assert term.text == "" and progress.calls == 1


def test_plan_warns_in_one_line_when_it_drops_more_than_a_quarter(labels, tmp_path, capsys):
    from jbalance import resample

    ls = jio.load(labels)
    dropped = resample.plan(ls.counts, num_steps=100, min_repeat=0).summary.dropped
    assert dropped > ls.num_images / 4  # the fixture's frequent class makes the plan drop
    code, out, err = _run(["plan", labels, "--quiet", "--steps", "100", "--min-repeat", "0",
                           "--json"], capsys)
    assert code == 0 and json.loads(out)["jbalance"]["dropped"] == dropped
    assert err.count("\n") == 1 and err.startswith("jbalance: warning: ")
    assert f"drops {dropped} of {ls.num_images} images" in err
    assert "docs/study.md" in err and "--min-repeat 1" in err
    # Oversampling only: nothing dropped, no warning, and the plan is the library's.
    code, out, err = _run(["plan", labels, "--quiet", "--steps", "100", "--min-repeat", "1",
                           "--out", tmp_path / "p.csv"], capsys)
    assert code == 0 and err == ""
    rows = (tmp_path / "p.csv").read_text().splitlines()[1:]
    repeats = np.array([int(r.split(",")[1]) for r in rows])
    np.testing.assert_array_equal(
            repeats, resample.plan(ls.counts, num_steps=100, min_repeat=1).repeats)
    assert repeats.min() >= 1
