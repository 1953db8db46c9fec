"""Reader benchmarks: `jbalance.io` on COCO-sized JSON, YOLO and VOC folders.

Cases (sizes depend on the mode; each row's note says which size ran):

Times are medians of process CPU time over rounds that alternate the implementations (the
machine is shared; wall times are in the notes).

* ``coco N images / B boxes``: `jbalance.io.read_coco` (parse + count matrix) against
  ``json.load`` alone (the floor every JSON reader pays) and pycocotools' ``COCO(path)``
  (parse + index) followed by the count matrix from its index; plus peak resident memory of
  the jbalance read measured in a fresh process.
* ``yolo F files`` / ``voc F files``: the folder readers, one file per image.

The files are synthetic (written here, Zipf-distributed classes) in a temporary folder.
Run under the shared lock:
``flock /tmp/bench.lock .venv-bench/bin/python -m benchmarks.bench_io [--quick]``.
"""

import gc
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

from benchmarks import _harness
from benchmarks._harness import Row


def write_coco(path: pathlib.Path, num_images: int, num_boxes: int, num_classes: int = 80,
               seed: int = 0) -> None:
    """A COCO instances file with non-contiguous category ids and Zipf class frequencies."""
    rng = np.random.default_rng(seed)
    cat_ids = np.sort(rng.choice(np.arange(1, 2 * num_classes), num_classes, replace=False))
    p = (np.arange(num_classes) + 1.0) ** -1.1
    cls = rng.choice(num_classes, num_boxes, p=p / p.sum())
    img = rng.integers(0, num_images, num_boxes)
    doc = {
        "info": {"description": "synthetic"},
        "images": [{"id": int(i) + 1, "file_name": f"{i:012d}.jpg", "width": 640,
                    "height": 480} for i in range(num_images)],
        "annotations": [{"id": k + 1, "image_id": int(img[k]) + 1,
                         "category_id": int(cat_ids[cls[k]]),
                         "bbox": [10.0, 20.0, 30.0, 40.0], "area": 1200.0, "iscrowd": 0}
                        for k in range(num_boxes)],
        "categories": [{"id": int(c), "name": f"class{j}", "supercategory": "x"}
                       for j, c in enumerate(cat_ids)],
    }
    path.write_text(json.dumps(doc))


def write_folders(root: pathlib.Path, num_files: int, num_classes: int = 20,
                  seed: int = 0) -> None:
    """YOLO (root/yolo/labels) and VOC (root/voc/Annotations) folders with the same labels."""
    rng = np.random.default_rng(seed)
    (root / "yolo" / "labels").mkdir(parents=True)
    (root / "voc" / "Annotations").mkdir(parents=True)
    (root / "yolo" / "data.yaml").write_text(
        "names: [" + ", ".join(f"c{j}" for j in range(num_classes)) + "]\n")
    for i in range(num_files):
        cls = rng.integers(0, num_classes, 1 + rng.poisson(1.5))
        (root / "yolo" / "labels" / f"{i:06d}.txt").write_text(
            "".join(f"{c} 0.5 0.5 0.2 0.3\n" for c in cls))
        objs = "".join(f"<object><name>c{c}</name><difficult>0</difficult><bndbox><xmin>1"
                       f"</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>"
                       for c in cls)
        (root / "voc" / "Annotations" / f"{i:06d}.xml").write_text(
            f"<annotation><filename>{i:06d}.jpg</filename>{objs}</annotation>")


def _pycocotools_counts(path: str) -> np.ndarray:
    import contextlib
    import io

    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress
        coco = COCO(path)
    img_ids = coco.getImgIds()
    cat_ids = coco.getCatIds()
    row = {i: k for k, i in enumerate(img_ids)}
    col = {c: k for k, c in enumerate(cat_ids)}
    counts = np.zeros((len(img_ids), len(cat_ids)), np.int32)
    for a in coco.dataset["annotations"]:
        if not a.get("iscrowd", 0):
            counts[row[a["image_id"]], col[a["category_id"]]] += 1
    return counts


def _fresh_process_read(path: str) -> tuple[float, float]:
    """(seconds, peak RSS GiB) of `read_coco` in a new interpreter (imports excluded)."""
    code = ("import time, resource, jbalance.io as jio; t = time.perf_counter(); "
            f"jio.read_coco({path!r}); dt = time.perf_counter() - t; "
            "print(dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    seconds, rss = out.stdout.split()
    return float(seconds), float(rss)


def _interleaved(fns: dict[str, Any], rounds: int) -> dict[str, tuple[float, float]]:
    """Median (CPU seconds, wall seconds) per function, calling them in alternation.

    The development machine is shared: alternating the implementations spreads load spikes
    over all of them, and process CPU time is far less sensitive to other users than wall
    time (both are reported).
    """
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    wall: dict[str, list[float]] = {k: [] for k in fns}
    for name, fn in fns.items():  # warm-up (imports, page cache)
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            gc.collect()
            c0, w0 = time.process_time(), time.perf_counter()
            out = fn()
            del out  # freeing the parsed document is part of the cost
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)
    return {k: (statistics.median(cpu[k]), statistics.median(wall[k])) for k in fns}


def run(quick: bool) -> list[Row]:
    import jbalance.io as jio

    rows: list[Row] = []
    num_images, num_boxes = (5_000, 50_000) if quick else (50_000, 500_000)
    num_files = 500 if quick else 5_000
    rounds = 3 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        coco = tmp / "instances.json"
        write_coco(coco, num_images, num_boxes)
        size_mb = coco.stat().st_size / 1e6
        case = f"coco {num_images} images / {num_boxes} boxes ({size_mb:.0f} MB), CPU s"
        ours = jio.read_coco(coco)

        def json_only():
            with open(coco, "rb") as f:
                return json.loads(f.read())

        fns: dict[str, Any] = {"jbalance.io.read_coco": lambda: jio.read_coco(coco),
                               "json.loads only (floor)": json_only}
        mod, why = _harness.try_import("pycocotools.coco")
        same = None
        if mod is not None:
            same = np.array_equal(_pycocotools_counts(str(coco)), ours.counts)
            fns["pycocotools COCO() + counts"] = lambda: _pycocotools_counts(str(coco))
        times = _interleaved(fns, rounds)
        for name, (cpu, wall) in times.items():
            note = f"wall {wall:.2f} s"
            if name == "jbalance.io.read_coco":
                note += f"; counts {ours.counts.shape}, {int(ours.counts.sum())} objects"
            if name.startswith("pycocotools"):
                note += f"; same counts: {same}"
            rows.append(Row(case, name, cpu, note=note, baseline=name.startswith("jbalance")))
        if mod is None:
            rows.append(Row(case, "pycocotools COCO() + counts", None, note=why))
        seconds, rss = _fresh_process_read(str(coco))
        rows.append(Row(case.replace(", CPU s", "") + " peak RSS",
                        "jbalance.io.read_coco (fresh process)", rss, unit="GiB",
                        baseline=True, note=f"wall {seconds:.2f} s"))

        write_folders(tmp, num_files)
        for fmt, reader, sub in (("yolo", jio.read_yolo, "yolo"),
                                 ("voc", jio.read_voc, "voc")):
            ls = reader(tmp / sub)
            cpu, wall = _interleaved({fmt: lambda r=reader, s=sub: r(tmp / s)}, rounds)[fmt]
            rows.append(Row(f"{fmt} {num_files} files, CPU s", f"jbalance.io.read_{fmt}", cpu,
                            baseline=True, note=f"wall {wall:.2f} s; "
                                                f"{int(ls.counts.sum())} objects"))
    return rows


if __name__ == "__main__":
    _harness.main(run)
