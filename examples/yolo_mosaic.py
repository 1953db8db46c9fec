"""Mosaic on YOLO labels, end to end: label files -> fixed box slots -> jitted Mosaic.

Builds a tiny YOLO dataset in a temporary folder (``images/*.png`` are not needed: the
boxes stay normalised, ``box_format="cxcywhn"``), reads it with
``jbalance.io.load(path, boxes=True)``, pads the objects of a batch with
``jbalance.boxes.pad_objects`` and runs ``jbalance.augment.mosaic_boxes`` with
``box_format="cxcywhn"``: the output boxes are YOLO boxes of the mosaic canvas.

Run: ``python -m examples.yolo_mosaic``.
"""

import pathlib
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from jbalance import augment, boxes, io

# class cx cy w h (normalised), one file per image: the YOLO txt format.
LABELS = {
    "img0": ["0 0.50 0.50 0.40 0.30", "1 0.20 0.25 0.10 0.20"],
    "img1": ["2 0.70 0.60 0.30 0.50"],
    "img2": ["0 0.30 0.30 0.20 0.20", "0 0.75 0.75 0.20 0.30", "1 0.50 0.10 0.60 0.10"],
    "img3": [],
}


def write_dataset(root: pathlib.Path) -> pathlib.Path:
    """A YOLO folder: ``labels/*.txt`` and a ``data.yaml`` with the class names."""
    (root / "labels").mkdir(parents=True)
    for name, lines in LABELS.items():
        (root / "labels" / f"{name}.txt").write_text("".join(f"{ln}\n" for ln in lines))
    (root / "data.yaml").write_text("names: [person, car, dog]\n")
    return root


def run(seed: int = 0, size: int = 64) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = write_dataset(pathlib.Path(tmp) / "yolo")
        label_set = io.load(root, boxes=True)
    objects = label_set.objects  # image_index, class_index, boxes [K, 4], box_format
    assert objects.box_format == "cxcywhn", objects.box_format
    # A batch of every image; M = the most objects in one image (nothing is dropped).
    batch = np.arange(label_set.counts.shape[0])
    m = int(np.bincount(objects.image_index).max())
    box_slots, classes, valid = boxes.pad_objects(objects, batch, max_boxes=m)
    # Pixels: stand-ins of the right shape (a real loader decodes label_set.image_paths).
    images = jnp.zeros((len(batch), size, size, 3), jnp.uint8)
    mosaic = jax.jit(lambda k, *a: augment.mosaic_boxes(
            k, *a, output_size=(2 * size, 2 * size), fill_value=114, box_format="cxcywhn"))
    out_images, out_boxes, out_classes, out_valid = mosaic(
            jax.random.key(seed), images, box_slots, classes, valid)
    return {"images": out_images, "boxes": np.asarray(out_boxes),
            "classes": np.asarray(out_classes), "valid": np.asarray(out_valid),
            "input_valid": valid, "names": label_set.class_names}


def main() -> None:
    res = run()
    print(f"objects in: {int(res['input_valid'].sum())}, "
          f"boxes kept per mosaic: {res['valid'].sum(-1).tolist()}")
    for i in range(res["valid"].shape[0]):
        for b, c in zip(res["boxes"][i][res["valid"][i]], res["classes"][i][res["valid"][i]]):
            print(f"mosaic {i}: {res['names'][c]:>6} cxcywhn "
                  + " ".join(f"{v:.3f}" for v in b))


if __name__ == "__main__":
    main()
