"""Second-view augmenters on real images (Fashion-MNIST from Debian's files,
zero-padded to 32x32x3 and normalised), checked against invariants computed
with numpy: what each output pixel may be, where it may come from, and what
the labels must then be."""

import gzip
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from r2kd_keras import augment
from r2kd_keras.augment import CutMixPick, Cutout, ReferenceCutMix, SecondView, make_augmenter
from tests.augment_helpers import TwoViewModel

DEBIAN = "/usr/share/datasets/fashion-mnist"
pytestmark = pytest.mark.skipif(
    not os.path.isdir(DEBIAN), reason="apt-get install dataset-fashion-mnist")
MEAN, STD = 0.2860, 0.3530
B, C = 16, 10
NAMES = ["mixup", "cutmix", "cutout", "randaugment", "autoaugment", "augmix", "cutmixpick"]


def _fashion(n):
    with gzip.open(os.path.join(DEBIAN, "t10k-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8)[16:].reshape(-1, 28, 28)[:n]
    with gzip.open(os.path.join(DEBIAN, "t10k-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8)[8:][:n]
    images = np.pad(images, ((0, 0), (2, 2), (2, 2)))[..., None].repeat(3, -1)
    return ((images / 255.0 - MEAN) / STD).astype(np.float32), labels.astype(np.int32)


X, Y = _fashion(B)
NORM = ((MEAN,) * 3, (STD,) * 3)
# Pixel values are multiples of 1/(255*STD) ~ 0.011 apart; an offset per image
# well below that makes every image's pixels distinct from every other's, so
# the source image of each output pixel can be told.
X_TAGGED = X + (np.arange(B, dtype=np.float32) * 3e-4)[:, None, None, None]


def _teacher(images):
    # Entropy falls with the image's mean brightness: a known, varied order.
    scale = 1.0 + 20.0 * tf.reduce_mean(images, axis=[1, 2, 3])
    return scale[:, None] * tf.range(C, dtype=tf.float32)[None, :] / C


def _call(aug, images, labels, **kw):
    if getattr(aug, "requires_teacher", False):
        kw.setdefault("teacher", _teacher)
    return aug({"images": images, "labels": labels}, **kw)


def _source(out_image, batch):
    """Index of the batch image each output pixel equals (all channels), -1 if none."""
    eq = np.all(np.abs(out_image[None] - batch) < 1e-6, axis=-1)  # (B, H, W)
    src = np.where(eq.any(0), eq.argmax(0), -1)
    return src


def _box_of(mask):
    rows, cols = np.where(mask)
    return rows.min(), rows.max() + 1, cols.min(), cols.max() + 1


def test_cutout_zeroes_exactly_one_clipped_hole_per_image():
    aug = make_augmenter("cutout", C, 32, seed=0)
    edges = set()
    for step in range(6):
        out = _call(aug, X, Y)
        images = out["images"].numpy()
        np.testing.assert_array_equal(out["labels"].numpy(), np.eye(C)[Y])
        for image, clean in zip(images, X):
            changed = np.any(image != clean, axis=-1)
            hole = np.all(image == 0.0, axis=-1)  # no Fashion-MNIST pixel normalises to 0
            assert not np.any(changed & ~hole)
            r0, r1, c0, c1 = _box_of(hole)
            assert hole[r0:r1, c0:c1].all() and hole.sum() == (r1 - r0) * (c1 - c0)
            for lo, hi in ((r0, r1), (c0, c1)):
                # Side 8 unless clipped at a border; centre uniform in [0, 32).
                assert hi - lo == 8 or (lo == 0 and 4 <= hi < 8) or (hi == 32 and 24 < lo <= 28)
                edges.add("border" if hi - lo < 8 else "inside")
    assert edges == {"border", "inside"}
    assert augment.Cutout(16).size == make_augmenter("cutout", C, 64).layer.size == 16


def test_cutout_shared_hole_as_in_reference():
    out = Cutout(8, per_image=False, seed=3)(tf.constant(X)).numpy()
    holes = np.all(out == 0, axis=-1)
    assert all(np.array_equal(holes[0], h) for h in holes) and holes[0].any()


def test_mixup_is_a_convex_pair_with_one_weight_for_image_and_label():
    aug = make_augmenter("mixup", C, 32, seed=1)
    out = _call(aug, X_TAGGED, Y)
    images, labels = out["images"].numpy(), out["labels"].numpy()
    weights = []
    for i in range(B):
        fits = []
        for j in range(B):
            d = (X_TAGGED[i] - X_TAGGED[j]).ravel()
            if j == i or d @ d == 0:
                continue
            lam = float((images[i] - X_TAGGED[j]).ravel() @ d / (d @ d))
            resid = np.abs(lam * X_TAGGED[i] + (1 - lam) * X_TAGGED[j] - images[i]).max()
            if resid < 1e-4:
                fits.append((j, lam))
        if not fits:  # paired with itself: unchanged
            np.testing.assert_allclose(images[i], X_TAGGED[i], atol=1e-5)
            np.testing.assert_allclose(labels[i], np.eye(C)[Y[i]], atol=1e-6)
            continue
        (j, lam), = fits
        assert 0.0 <= lam <= 1.0
        expected = lam * np.eye(C)[Y[i]] + (1 - lam) * np.eye(C)[Y[j]]
        np.testing.assert_allclose(labels[i], expected, atol=1e-4)
        weights.append(lam)
    # Beta(0.2, 0.2) piles up near 0 and 1.
    assert len(weights) >= B // 2 and np.mean([min(w, 1 - w) for w in weights]) < 0.3


def test_cutmix_pastes_one_box_from_one_partner_and_weights_labels_by_area():
    aug = make_augmenter("cutmix", C, 32, seed=2)
    areas = []
    for _ in range(3):
        out = _call(aug, X_TAGGED, Y)
        images, labels = out["images"].numpy(), out["labels"].numpy()
        for i in range(B):
            src = _source(images[i], X_TAGGED)
            assert (src >= 0).all(), "every pixel must come from a batch image"
            partners = set(np.unique(src)) - {i}
            assert len(partners) <= 1
            area = 0
            if partners:
                (j,) = partners
                pasted = src == j
                r0, r1, c0, c1 = _box_of(pasted)
                assert pasted.sum() == (r1 - r0) * (c1 - c0), "pasted region is a box"
                area = pasted.sum()
                expected = (1 - area / 1024) * np.eye(C)[Y[i]] + area / 1024 * np.eye(C)[Y[j]]
                np.testing.assert_allclose(labels[i], expected, atol=1e-5)
            areas.append(area)
    assert 0 < np.mean(areas) < 1024


def test_cutmixpick_keeps_highest_clean_entropy_images():
    x = tf.constant(X_TAGGED)
    mixed = _call(ReferenceCutMix(seed=4), x, tf.one_hot(Y, C))["images"].numpy()
    logits = _teacher(x).numpy()
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    entropy = -(p * np.log(p)).sum(1)
    top = np.argsort(-entropy)[:5]
    pick = CutMixPick(C, max_samples=5, seed=4)
    assert pick.requires_teacher
    out = _call(pick, x, Y)["images"].numpy()
    np.testing.assert_allclose(out, mixed[top], atol=1e-6)
    # With max_samples >= B (the reference: batch 64, keep 64) nothing is dropped.
    all_kept = _call(CutMixPick(C, seed=4), x, Y)["images"].numpy()
    assert all_kept.shape == mixed.shape
    assert sorted(map(bytes, all_kept.round(5))) == sorted(map(bytes, mixed.round(5)))


def test_cutmixpick_without_teacher_says_how_to_call_it():
    with pytest.raises(ValueError, match="teacher=fn"):
        make_augmenter("cutmixpick", C, 32)({"images": X, "labels": Y})


@pytest.mark.parametrize("name", ["randaugment", "autoaugment", "augmix"])
def test_value_range_layers_stay_within_the_normalised_unit_range(name):
    aug = make_augmenter(name, C, 32, seed=5, normalization=NORM)
    out = _call(aug, X, Y)["images"].numpy()
    assert out.shape == X.shape and out.dtype == np.float32
    assert out.min() >= (0 - MEAN) / STD - 1e-4 and out.max() <= (1 - MEAN) / STD + 1e-4
    # autoaugment draws one sub-policy per batch, whose ops may all be skipped.
    changes = [np.abs(_call(aug, X, Y)["images"].numpy() - X).mean() for _ in range(4)]
    assert max(changes) > 1e-3


def test_denormalise_then_normalise_is_exact():
    view = SecondView(keras.layers.Identity(), C, normalization=NORM)
    np.testing.assert_allclose(view(tf.constant(X)).numpy(), X, atol=1e-6)


# Not augmix: Keras's AugMix picks its ops with Python's `random`, unseeded.
@pytest.mark.parametrize("name", [n for n in NAMES if n != "augmix"])
def test_seeded_determinism_int_and_one_hot_labels(name):
    first = _call(make_augmenter(name, C, 32, seed=7), X, Y)
    second = _call(make_augmenter(name, C, 32, seed=7), X, np.eye(C, dtype=np.float32)[Y])
    np.testing.assert_allclose(first["images"], second["images"], atol=1e-6)
    np.testing.assert_allclose(first["labels"], second["labels"], atol=1e-6)
    assert first["labels"].dtype == tf.float32 and first["labels"].shape == (B, C)
    other = _call(make_augmenter(name, C, 32, seed=8), X, Y)
    assert not np.allclose(first["images"], other["images"])


@pytest.mark.parametrize("name", NAMES)
def test_runs_in_tf_function_and_in_dataset_map(name):
    aug = make_augmenter(name, C, 32, seed=9)

    @tf.function
    def step(images, labels):
        return _call(aug, images, labels)["images"]

    assert step(tf.constant(X), tf.constant(Y)).shape == X.shape
    ds = tf.data.Dataset.from_tensor_slices((X, Y)).batch(8).map(
        lambda images, labels: _call(aug, images, labels))
    batches = list(ds)
    assert [b["images"].shape for b in batches] == [(8, 32, 32, 3)] * 2
    assert all(b["labels"].dtype == tf.float32 for b in batches)
    if not aug.requires_teacher:
        assert aug(tf.constant(X)).shape == X.shape  # plain tensor in, tensor out


def test_runs_inside_mirrored_strategy(mirrored_strategy):
    strategy = mirrored_strategy
    with strategy.scope():
        cutout = make_augmenter("cutout", C, 32, seed=0)
        pick = make_augmenter("cutmixpick", C, 32, seed=0)

    @tf.function
    def step(images, labels):
        def replica(images, labels):
            return (_call(cutout, images, labels)["images"],
                    _call(pick, images, labels)["images"])
        return strategy.run(replica, (images, labels))

    ds = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices((X, Y)).batch(B))
    for images, labels in ds:
        outs = step(images, labels)
        for out in outs:
            assert [t.shape for t in strategy.experimental_local_results(out)] == [(8, 32, 32, 3)] * 2


@pytest.mark.parametrize("name", ["mixup", "cutmixpick", "cutout"])
def test_under_fit_and_xla_fallback(name):
    aug = make_augmenter(name, C, 32, seed=12)
    # Beta sampling has no XLA kernel on CPU: such views opt the model out of XLA.
    assert aug.supports_jit is (name == "cutout")
    teacher = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(),
                                keras.layers.Dense(C)])
    model = TwoViewModel(aug, C, teacher=teacher)
    if aug.supports_jit:
        model.compile(optimizer="sgd", jit_compile=True)
        assert model.jit_compile
    else:
        with pytest.warns(UserWarning, match="jit_compile=False"):
            model.compile(optimizer="sgd", jit_compile=True)
    history = model.fit(X, Y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all() and float(model.change) > 0


@pytest.mark.parametrize("name", ["cutout", "cutmix", "cutmixpick", "randaugment", "autoaugment"])
def test_config_round_trip(name):
    aug = make_augmenter(name, C, 32, seed=11)
    clone = type(aug).from_config(aug.get_config())
    assert clone.get_config() == aug.get_config()
    np.testing.assert_allclose(_call(aug, X, Y)["images"], _call(clone, X, Y)["images"], atol=1e-6)


def test_none_and_errors():
    assert make_augmenter("none", C, 32) is None
    with pytest.raises(ValueError, match="'mosaic'.*cutmix"):
        make_augmenter("mosaic", C, 32)
    aug = make_augmenter("mixup", C, 32)
    with pytest.raises(ValueError, match=r"\(32, 32, 3\).*batch"):
        aug({"images": X[0], "labels": Y[:1]})
    with pytest.raises(ValueError, match="num_classes=10"):
        aug({"images": X, "labels": np.ones((B, 7), np.float32)})
    with pytest.raises(ValueError, match="num_classes"):
        make_augmenter("mixup", 0, 32)
