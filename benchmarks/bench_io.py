"""Reader benchmarks: `jbalance.io` on COCO-sized JSON, YOLO and VOC folders.

Cases (sizes depend on the mode; each row's note says which size ran):

Times are medians of process CPU time over rounds that alternate the implementations (the
machine is shared; wall times are in the notes).

* ``coco N images / B boxes``: `jbalance.io.read_coco` (parse + count matrix; with msgspec
  installed, the optional ``fast`` extra, its typed decoder, else ``json``), the same with
  ``json`` forced, and with ``boxes=True`` (objects + image sizes, goal <= 1.5x counts),
  against ``json.loads`` alone (the floor every ``json`` reader pays), ``orjson.loads``
  alone, and pycocotools' ``COCO(path)`` (parse + index) followed by the count matrix from
  its index (goal: jbalance >= 2x faster); plus peak resident memory (goal <= 1 GiB) of each
  jbalance read in a fresh interpreter.

Peak memory is the fresh process's ``VmHWM`` from ``/proc/self/status``, not
``getrusage().ru_maxrss``: on Linux a child keeps the parent's ``ru_maxrss`` across
fork + exec, so a child of a benchmark process that had grown to 2 GiB reports >= 2 GiB
whatever it does (the 2.13 GiB once recorded here was that artefact).
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


_PEAK = ("def _kib(key):\n"
         "    for line in open('/proc/self/status'):\n"
         "        if line.startswith(key):\n"
         "            return int(line.split()[1])\n")


def _fresh_process_read(path: str, *, boxes: bool = False,
                        use_msgspec: bool = True) -> tuple[float, float, float]:
    """(seconds, peak RSS GiB, GiB above the RSS after imports) of `read_coco`, measured in
    a new interpreter (imports excluded from the time)."""
    code = (("import sys; sys.modules['msgspec'] = None\n" if not use_msgspec else "")
            + _PEAK + "import time, jbalance.io as jio\n"
            "base = _kib('VmRSS'); t = time.perf_counter()\n"
            f"jio.read_coco({path!r}, boxes={boxes})\n"
            "print(time.perf_counter() - t, _kib('VmHWM') / 2**20, "
            "(_kib('VmHWM') - base) / 2**20)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    seconds, peak, above = out.stdout.split()
    return float(seconds), float(peak), float(above)


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

        from jbalance._src.io import coco as coco_mod

        fast = coco_mod._fast_decoder() is not None
        parser = "msgspec" if fast else "json"

        def json_reader(boxes=False):
            real = coco_mod._fast_decoder
            coco_mod._fast_decoder = lambda: None
            try:
                return jio.read_coco(coco, boxes=boxes)
            finally:
                coco_mod._fast_decoder = real

        fns: dict[str, Any] = {"jbalance.io.read_coco": lambda: jio.read_coco(coco),
                               "jbalance.io.read_coco boxes=True":
                                   lambda: jio.read_coco(coco, boxes=True)}
        if fast:
            fns["jbalance.io.read_coco, json parser (no fast extra)"] = json_reader
            fns["jbalance.io.read_coco boxes=True, json parser"] = \
                lambda: json_reader(boxes=True)
        fns["json.loads only (floor)"] = json_only
        orjson, orjson_why = _harness.try_import("orjson")
        if orjson is not None:
            fns["orjson.loads only"] = lambda: orjson.loads(coco.read_bytes())
        mod, why = _harness.try_import("pycocotools.coco")
        same = None
        if mod is not None:
            same = np.array_equal(_pycocotools_counts(str(coco)), ours.counts)
            fns["pycocotools COCO() + counts"] = lambda: _pycocotools_counts(str(coco))
        times = _interleaved(fns, rounds)
        for name, (cpu, wall) in times.items():
            note = f"wall {wall:.2f} s"
            if name == "jbalance.io.read_coco":
                note += (f"; parser {parser}; counts {ours.counts.shape}, "
                         f"{int(ours.counts.sum())} objects")
            if name.startswith("pycocotools"):
                note += f"; same counts: {same}"
            rows.append(Row(case, name, cpu, note=note, baseline=name == "jbalance.io.read_coco"))
        if mod is None:
            rows.append(Row(case, "pycocotools COCO() + counts", None, note=why))
        if orjson is None:
            rows.append(Row(case, "orjson.loads only", None, note=orjson_why))
        if not fast:
            rows.append(Row(case, "jbalance.io.read_coco, msgspec parser", None,
                            note="msgspec not installed (pip install 'jbalance[fast]')"))
        peak_case = case.replace(", CPU s", "") + " peak RSS"
        variants = [("counts", False, fast), ("boxes=True", True, fast)]
        if fast:
            variants.append(("counts, json parser", False, False))
        for label, with_boxes, use_msgspec in variants:
            seconds, peak, above = _fresh_process_read(str(coco), boxes=with_boxes,
                                                       use_msgspec=use_msgspec)
            rows.append(Row(peak_case, f"jbalance.io.read_coco {label} (fresh process)", peak,
                            unit="GiB", baseline=label == "counts",
                            note=f"VmHWM incl. imports; {above:.2f} GiB above the RSS after "
                                 f"imports; wall {seconds:.2f} s; "
                                 f"parser {'msgspec' if use_msgspec else 'json'}"))

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
