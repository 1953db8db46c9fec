"""The copy kernels (jbalance._src.augment._kernels) at their edge cases, and donation.

Band heights, tile sizes and box sizes from empty to whole, checked against the NumPy
reference (pixels exact); the ``in_place`` contract (the result aliases a donated batch and
equals the default); and the donated-spare recipe of docs/augment.md.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from augment_data import box_data, expected_cutmix, images, soft_labels

from jbalance import augment
from jbalance._src.augment import _kernels


@pytest.mark.slow
@pytest.mark.parametrize("band_rows", [1, 8, 64])
def test_cutmix_batch_window_path_and_donation_match_the_reference(getkey, monkeypatch,
                                                                   band_rows):
    b, h, w = 6, 33, 20
    # Bands of 1 and 8 rows (shifted last band) and one band for the whole image.
    monkeypatch.setattr(_kernels, "_BAND_BYTES", band_rows * b * w * 3)
    x = images(getkey(), b, h=h, w=w, dtype=jnp.uint8)
    y = soft_labels(getkey(), b)
    plain = jax.jit(lambda k, a, c: augment.cutmix(k, a, c, alpha=0.3, mode="batch"))
    donated = jax.jit(lambda k, a, c: augment.cutmix(k, a, c, alpha=0.3, mode="batch"),
                      donate_argnums=1)
    sizes = set()
    for seed in range(6):  # alpha=0.3: box sizes from tiny to whole, many band counts
        key = jax.random.key(seed)
        want_x, want_y, boxes, _ = expected_cutmix(key, x, y, 0.3, mode="batch")
        for g in (plain(key, x, y), donated(key, jnp.array(x, copy=True), y)):
            np.testing.assert_array_equal(np.asarray(g[0]), want_x)
            np.testing.assert_allclose(np.asarray(g[1]), want_y, rtol=1e-6, atol=1e-7)
        sizes.add(boxes[0][1] - boxes[0][0])
    assert len(sizes) > 3


def _in_place_cases():
    # (function, extra keyword arguments, takes detection targets)
    return [(augment.mixup, {}, False), (augment.remix, {"counts": jnp.arange(1., 5.)}, False),
            (augment.cutmix, {}, False), (augment.mixup_boxes, {}, True)]


@pytest.mark.slow
@pytest.mark.parametrize("case,mode,dtype,h,band_bytes", [
    (0, "elem", jnp.float32, 12, 1), (0, "batch", jnp.float32, 12, 1 << 30),
    (0, "elem", jnp.uint8, 13, 1), (0, "elem", jnp.bfloat16, 12, 1000),
    (1, "elem", jnp.float32, 12, 1000), (1, "batch", jnp.uint8, 13, 1),
    (2, "elem", jnp.uint8, 13, 1), (2, "elem", jnp.float32, 12, 1 << 30),
    (2, "batch", jnp.float32, 12, 1000), (3, "elem", jnp.float32, 12, 1),
    (3, "batch", jnp.uint8, 12, 1000)])
def test_in_place_equals_the_default_with_and_without_donation(getkey, monkeypatch, case, mode,
                                                               dtype, h, band_bytes):
    # Bands of one row, of the whole image, and of a divisor of H (1000 bytes: 3 rows of
    # 5 x 10 x 3 x 4 bytes, 6 of 5 x 10 x 3 x 2 -> the largest divisor of 12 that fits);
    # H = 13 (prime): 1 row.
    monkeypatch.setattr(_kernels, "_BAND_BYTES", band_bytes)
    fn, extra, detection = _in_place_cases()[case]
    b = 5
    x = images(getkey(), b, h=h, dtype=dtype)
    if detection:
        bx = jnp.tile(jnp.array([[1., 1., 6., 7.], [0., 2., 9., 11.]]), (b, 1, 1))
        rest = (bx, jnp.zeros((b, 2), jnp.int32), jnp.ones((b, 2), bool))
        extra = {**extra, "alpha": 0.8}
    else:
        rest = (soft_labels(getkey(), b, k=4),)
    key = getkey()

    def run(in_place, donate):
        f = jax.jit(lambda k, a, *r: fn(k, a, *r, mode=mode, in_place=in_place, **extra),
                    donate_argnums=(1,) if donate else ())
        return f(key, jnp.array(x, copy=True), *rest)

    want = run(False, False)
    for got in (run(True, False), run(True, True)):
        for g, w_ in zip(got[1:], want[1:]):  # labels / targets: unchanged by in_place
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w_))
        g, w_ = np.asarray(got[0]), np.asarray(want[0])
        if fn is augment.cutmix:  # pixel copies: exact
            np.testing.assert_array_equal(g, w_)
        elif dtype == jnp.uint8:  # one float32 rounding (FMA) may move a halfway case by 1
            assert np.abs(g.astype(np.int32) - w_.astype(np.int32)).max() <= 1
        else:  # the in-place kernel may contract the blend into an FMA: one rounding
            np.testing.assert_array_max_ulp(g.astype(np.float32), w_.astype(np.float32), 1)


def _cycle_lengths(p):
    seen, lengths = set(), []
    for start in range(len(p)):
        n, i = 0, start
        while i not in seen:
            seen.add(i)
            i, n = int(p[i]), n + 1
        if n:
            lengths.append(n)
    return lengths


@pytest.mark.parametrize("b,h,w,tile,dtype", [
    (7, 12, 10, (32, 64), jnp.float32),  # tiles larger than the image: every box masked
    (7, 12, 10, (3, 4), jnp.uint8),  # whole tiles, shifted last tiles, masked small boxes
    (6, 13, 11, (1, 1), jnp.float32),  # one-pixel tiles
    (1, 9, 9, (2, 3), jnp.int32)])  # one example: its own partner, nothing moves
def test_in_place_elem_cutmix_walks_the_partner_cycles(monkeypatch, b, h, w, tile, dtype):
    # Elem-mode CutMix in place copies each box from the partner, cycle by cycle, through
    # a one-image scratch at each cycle's end; against the reference, many permutations
    # (fixed points and long cycles) and box sizes from empty to whole.
    monkeypatch.setattr(_kernels, "_TILE", tile)
    x = images(jax.random.key(b), b, h=h, w=w, dtype=dtype)
    y = soft_labels(jax.random.key(1), b)
    donated = jax.jit(lambda k, a, c: augment.cutmix(k, a, c, alpha=0.4, in_place=True),
                      donate_argnums=1)
    lengths, areas = set(), set()
    for seed in range(12):
        key = jax.random.key(seed)
        want_x, want_y, boxes, p = expected_cutmix(key, x, y, 0.4)
        got = donated(key, jnp.array(x, copy=True), y)
        np.testing.assert_array_equal(np.asarray(got[0]), want_x)
        np.testing.assert_allclose(np.asarray(got[1]), want_y, rtol=1e-6, atol=1e-7)
        lengths.update(_cycle_lengths(p[:, 0]))
        areas.update((y2 - y1) * (x2 - x1) for y1, y2, x1, x2 in boxes)
    if b > 1:  # the draws reached fixed points, long cycles, empty and large boxes
        assert 1 in lengths and max(lengths) >= 3, lengths
        assert min(areas) < (h * w) / 8 and max(areas) > (h * w) / 2, areas


def test_in_place_elem_cutmix_with_partner_weights_matches_the_reference(getkey):
    # Weighted partners are drawn with replacement (no permutation): the band path.
    x = images(getkey(), 6, dtype=jnp.uint8)
    y = soft_labels(getkey(), 6)
    wts = np.array([0., 1., 5., 1., 0., 2.], np.float32)
    key = getkey()
    want_x, _, _, p = expected_cutmix(key, x, y, 1.0, partner_weights=wts)
    assert len(set(p[:, 0].tolist())) < 6  # not a permutation
    got = jax.jit(lambda k, a, c: augment.cutmix(k, a, c, partner_weights=wts, in_place=True),
                  donate_argnums=1)(key, jnp.array(x, copy=True), y)
    np.testing.assert_array_equal(np.asarray(got[0]), want_x)


@pytest.mark.parametrize("name,options", [("mixup", {}), ("cutmix", {}),
                                          ("cutmix", {"mode": "batch"}),
                                          ("remix", {"counts": jnp.arange(1., 5.)}),
                                          ("mosaic_boxes", {"output_size": (24, 20)})])
def test_a_donated_spare_buffer_receives_the_output(getkey, name, options):
    # The recipe in docs/augment.md: donate last call's output as an extra, ignored
    # argument; XLA writes the new output into it (no fresh batch-sized buffer) and the
    # result is that of the plain call.
    fn = getattr(augment, name)
    x = images(getkey(), 6, dtype=jnp.uint8)
    if name == "mosaic_boxes":
        rest = box_data(getkey(), 6)
    else:
        rest = (soft_labels(getkey(), 6),)
    key = getkey()
    plain = jax.jit(lambda k, a, *r: fn(k, a, *r, **options))
    want = plain(key, x, *rest)
    spared = jax.jit(lambda k, a, *r: fn(k, a, *r[:-1], **options),
                     donate_argnums=2 + len(rest), keep_unused=True)
    spare = jnp.zeros_like(want[0])
    assert "input_output_alias" in spared.lower(key, x, *rest, spare).compile().as_text()
    got = spared(key, x, *rest, spare)
    assert spare.is_deleted()  # its buffer now holds the output
    for g, w_ in zip(got, want):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w_))


@pytest.mark.parametrize("op", ["mixup", "cutmix"])
def test_in_place_on_a_donated_batch_aliases_it_and_copies_nothing_batch_sized(monkeypatch,
                                                                             op):
    # The contract of `in_place=True`: XLA writes the result into the donated input buffer
    # (input/output alias) and never materialises a second batch-sized array.
    x = jnp.zeros((8, 16, 16, 3), jnp.float32)
    y = jnp.zeros((8, 4), jnp.float32)
    monkeypatch.setattr(_kernels, "_BAND_BYTES", 2 * 8 * 16 * 3 * 4)  # 8 bands of 2 rows
    fn = getattr(augment, op)
    batch = "f32[8,16,16,3]"

    def compiled(in_place):
        f = jax.jit(lambda k, a, c: fn(k, a, c, in_place=in_place), donate_argnums=1)
        return f.lower(jax.random.key(0), x, y).compile().as_text()

    def batch_copies(text):
        return [ln for ln in text.splitlines()
                if batch in ln.split("=", 1)[-1].split("(")[0]
                and (" copy(" in ln or "gather(" in ln)]

    text = compiled(True)
    assert "input_output_alias" in text
    assert not batch_copies(text), batch_copies(text)
    # The default path computes into a new buffer and copies it into the donated one.
    assert batch_copies(compiled(False))
