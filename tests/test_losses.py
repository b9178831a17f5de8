"""Every loss against an independent float64 numpy reference written from the
method spec (shared/docs/r2kd-method.md) and the reference PyTorch code."""

import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from r2kd_keras import losses


# ---------------------------------------------------------------- references
def np_softmax(z, t):
    z = np.asarray(z, np.float64) / t
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def np_cos(a, b, absolute=False, centred=False):
    if centred:
        a = a - a.mean(1, keepdims=True)
        b = b - b.mean(1, keepdims=True)
    dot = (a * b).sum(1)
    if absolute:
        dot = np.abs(dot)
    return dot / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-8)


def np_value(zs, zt, t=4.0):
    ps, pt = np_softmax(zs, t), np_softmax(zt, t)
    d_row = 1 - np_cos(ps, pt, absolute=True).mean()
    d_col = 1 - np_cos(ps.T, pt.T, absolute=True).mean()
    return t**2 * (d_row + d_col)


def np_ranks(p):
    c = p.shape[1]
    r = np.argsort(np.argsort(p, axis=1, kind="stable"), axis=1, kind="stable") + 1
    return r / (c * (c + 1) / 2)


def np_rank(zs, zt, t=4.0):
    rs, rt = np_ranks(np_softmax(zs, t)), np_ranks(np_softmax(zt, t))
    return 1 - np_cos(rs, rt, centred=True).mean()


def np_kd(zs, zt, t=4.0):
    ps, pt = np_softmax(zs, t), np_softmax(zt, t)
    return t**2 * np.mean(np.sum(pt * (np.log(pt) - np.log(ps)), axis=1))


def np_dist(zs, zt, t=4.0, beta=2.0, gamma=2.0):
    ps, pt = np_softmax(zs, t), np_softmax(zt, t)
    inter = 1 - np_cos(ps, pt, centred=True).mean()
    intra = 1 - np_cos(ps.T, pt.T, centred=True).mean()
    return t**2 * (beta * inter + gamma * intra)


def np_dkd(zs, zt, y, t=4.0, alpha=1.0, beta=8.0):
    c = zs.shape[1]
    gt = np.eye(c)[y]
    ps, pt = np_softmax(zs, t), np_softmax(zt, t)
    bs = np.stack([(ps * gt).sum(1), (ps * (1 - gt)).sum(1)], 1)
    bt = np.stack([(pt * gt).sum(1), (pt * (1 - gt)).sum(1)], 1)
    tckd = np.mean(np.sum(bt * (np.log(bt) - np.log(bs)), 1))
    qs = np_softmax(zs - 1000.0 * t * gt, t)
    qt = np_softmax(zt - 1000.0 * t * gt, t)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(qt > 0, qt * (np.log(qt) - np.log(qs)), 0.0)
    nckd = np.mean(np.sum(kl, 1))
    return t**2 * (alpha * tckd + beta * nckd)


# -------------------------------------------------------------------- inputs
def logits(seed, b=64, c=100, scale=3.0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(b, c)) * scale).astype(np.float32)


CASES = {
    "B64_C100": (logits(0), logits(1)),
    "B1_C100": (logits(2, b=1), logits(3, b=1)),
    "B64_C2": (logits(4, c=2), logits(5, c=2)),
    "B7_C10_wide": (logits(6, b=7, c=10, scale=10.0), logits(7, b=7, c=10, scale=10.0)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize(
    "ours, ref",
    [
        (losses.correlation_value_loss, np_value),
        (losses.spearman_rank_loss, np_rank),
        (losses.kd_loss, np_kd),
        (losses.dist_loss, np_dist),
    ],
    ids=["value", "rank", "kd", "dist"],
)
def test_loss_matches_numpy_reference(case, ours, ref):
    zs, zt = CASES[case]
    np.testing.assert_allclose(float(ours(zs, zt)), ref(zs, zt), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("case", sorted(CASES))
def test_dkd_matches_numpy_reference(case):
    zs, zt = CASES[case]
    y = np.random.default_rng(8).integers(0, zs.shape[1], size=zs.shape[0])
    np.testing.assert_allclose(
        float(losses.dkd_loss(zs, zt, y)), np_dkd(zs, zt, y), rtol=2e-5, atol=2e-6
    )
    one_hot = np.eye(zs.shape[1], dtype=np.float32)[y]
    np.testing.assert_allclose(
        float(losses.dkd_loss(zs, zt, one_hot)), np_dkd(zs, zt, y), rtol=2e-5, atol=2e-6
    )


def test_r2kd_loss_is_the_weighted_sum_by_hand():
    zs, zt = CASES["B64_C100"]
    expected = 2.0 * np_value(zs, zt) + 3.0 * np_rank(zs, zt)
    got = losses.r2kd_loss(zs, zt, value_weight=2.0, rank_weight=3.0)
    np.testing.assert_allclose(float(got), expected, rtol=2e-5)


def test_value_loss_on_a_two_by_two_case_worked_by_hand():
    # With tau=1: P_s rows (0.5, 0.5) and (0.5, 0.5); P_t rows (1, 0)-ish.
    # Use logits whose softmax is exact: z_t = [[0, -inf-ish]] is not finite,
    # so take P_t = softmax([[log 3, 0], [0, log 3]]) = [[.75, .25], [.25, .75]].
    zs = np.zeros((2, 2), np.float32)
    zt = np.log(np.array([[3.0, 1.0], [1.0, 3.0]], np.float32))
    cos = (0.5 * 0.75 + 0.5 * 0.25) / (np.sqrt(0.5) * np.sqrt(0.75**2 + 0.25**2))
    # Rows and columns are the same vectors here, so d_row = d_col = 1 - cos.
    expected = 2 * (1 - cos)
    got = losses.correlation_value_loss(zs, zt, temperature=1.0)
    # float32 arithmetic against a float64 hand value: ~1e-6 relative error.
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


@pytest.mark.parametrize(
    "fn",
    [losses.correlation_value_loss, losses.spearman_rank_loss, losses.kd_loss,
     losses.dist_loss, losses.r2kd_loss],
)
def test_identical_logits_give_zero(fn):
    z = logits(9, b=16, c=10)
    # float32 rounding of 1 - cos (~2e-7) is amplified by up to tau^2 * 4 = 64.
    assert abs(float(fn(z, z))) < 3e-5


def test_dkd_identical_logits_give_zero():
    z = logits(9, b=16, c=10)
    assert abs(float(losses.dkd_loss(z, z, np.arange(16) % 10))) < 1e-5


def test_constant_student_row_is_handled_like_the_reference():
    zs, zt = logits(10, b=8, c=10), logits(11, b=8, c=10)
    zs[3] = 1.5  # a uniform prediction: ties, broken by position
    for ours, ref in [(losses.correlation_value_loss, np_value),
                      (losses.spearman_rank_loss, np_rank),
                      (losses.dist_loss, np_dist)]:
        np.testing.assert_allclose(float(ours(zs, zt)), ref(zs, zt), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize(
    "fn",
    [losses.correlation_value_loss, losses.kd_loss, losses.dist_loss,
     lambda s, t: losses.spearman_rank_loss(s, t, mode="soft"),
     lambda s, t: losses.dkd_loss(s, t, np.zeros(8, np.int32))],
    ids=["value", "kd", "dist", "soft_rank", "dkd"],
)
def test_huge_logits_stay_finite_with_finite_gradients(fn):
    zs = tf.constant(logits(12, b=8, c=10, scale=1e4))
    zt = tf.constant(logits(13, b=8, c=10, scale=1e4))
    with tf.GradientTape() as tape:
        tape.watch(zs)
        loss = fn(zs, zt)
    grad = tape.gradient(loss, zs)
    assert np.isfinite(float(loss))
    assert np.all(np.isfinite(grad.numpy()))


def test_value_loss_gradient_matches_finite_differences():
    zs = logits(14, b=6, c=5, scale=2.0).astype(np.float64)
    zt = logits(15, b=6, c=5, scale=2.0).astype(np.float64)
    x = tf.constant(zs, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = losses.correlation_value_loss(x, zt)
    grad = tape.gradient(loss, x).numpy()
    h = 1e-5
    numeric = np.zeros_like(zs)
    for idx in np.ndindex(zs.shape):
        up, down = zs.copy(), zs.copy()
        up[idx] += h
        down[idx] -= h
        numeric[idx] = (np_value(up, zt) - np_value(down, zt)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-5)


def test_exact_rank_passes_no_gradient_and_soft_rank_does():
    zs = tf.constant(logits(16, b=8, c=10))
    zt = logits(17, b=8, c=10)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(zs)
        exact = losses.spearman_rank_loss(zs, zt, mode="exact")
        soft = losses.spearman_rank_loss(zs, zt, mode="soft")
    assert tape.gradient(exact, zs) is None
    soft_grad = tape.gradient(soft, zs).numpy()
    assert np.all(np.isfinite(soft_grad)) and np.abs(soft_grad).max() > 0


def test_soft_rank_converges_to_exact_as_sharpness_grows():
    zs, zt = CASES["B64_C100"]
    exact = np_rank(zs, zt)
    gaps = [
        abs(float(losses.spearman_rank_loss(zs, zt, mode="soft", sharpness=k)) - exact)
        for k in (1.0, 10.0, 100.0, 1e4)
    ]
    assert gaps == sorted(gaps, reverse=True), gaps
    assert gaps[-1] < 1e-4 and gaps[0] > 10 * gaps[-1]


def test_soft_rank_gradient_descent_lowers_the_exact_rank_loss():
    rng = np.random.default_rng(18)
    zt = rng.normal(size=(16, 10)).astype(np.float32)
    zs = tf.Variable(rng.normal(size=(16, 10)).astype(np.float32))
    before = float(losses.spearman_rank_loss(zs, zt))
    for _ in range(50):
        with tf.GradientTape() as tape:
            loss = losses.spearman_rank_loss(zs, zt, mode="soft", sharpness=5.0)
        zs.assign_sub(20.0 * tape.gradient(loss, zs))
    assert float(losses.spearman_rank_loss(zs, zt)) < 0.5 * before


@pytest.mark.parametrize(
    "cls, fn, kwargs",
    [
        (losses.CorrelationValueLoss, losses.correlation_value_loss, {"temperature": 2.0}),
        (losses.SpearmanRankLoss, losses.spearman_rank_loss, {"mode": "soft", "sharpness": 3.0}),
        (losses.R2KDLoss, losses.r2kd_loss, {"value_weight": 1.0, "rank_mode": "soft"}),
        (losses.KDLoss, losses.kd_loss, {"temperature": 3.0}),
        (losses.DISTLoss, losses.dist_loss, {"beta": 1.0, "gamma": 0.5}),
    ],
)
def test_loss_wrappers_match_functions_and_round_trip_config(cls, fn, kwargs):
    zs, zt = CASES["B64_C100"]
    loss = cls(**kwargs)
    np.testing.assert_allclose(float(loss(zt, zs)), float(fn(zs, zt, **kwargs)), rtol=1e-6)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is cls and restored.get_config() == loss.get_config()
    np.testing.assert_allclose(float(restored(zt, zs)), float(loss(zt, zs)), rtol=1e-6)


def test_dkd_wrapper_takes_teacher_logits_and_labels():
    zs, zt = CASES["B64_C100"]
    y = np.arange(64) % 100
    got = losses.DKDLoss(beta=6.0)({"teacher_logits": zt, "labels": y}, zs)
    np.testing.assert_allclose(float(got), np_dkd(zs, zt, y, beta=6.0), rtol=2e-5)
    with pytest.raises(ValueError, match="teacher_logits"):
        losses.DKDLoss()(zt, zs)


def test_correlation_distillation_plugs_into_keras_distiller():
    inputs = keras.Input((8,))
    teacher = keras.Model(inputs, keras.layers.Dense(5)(inputs))
    student = keras.Sequential([keras.Input((8,)), keras.layers.Dense(5)])
    distiller = keras.distillation.Distiller(
        teacher=teacher, student=student,
        distillation_losses=losses.CorrelationDistillation(rank_mode="soft"),
        student_loss_weight=0.5,
    )
    distiller.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(19)
    x = rng.normal(size=(32, 8)).astype(np.float32)
    y = rng.integers(0, 5, size=32)
    history = distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    dl = losses.CorrelationDistillation(temperature=2.0)
    again = losses.CorrelationDistillation.from_config(dl.get_config())
    zs, zt = CASES["B64_C100"]
    expected = 2 * np_value(zs, zt, 2.0) + 2 * np_rank(zs, zt, 2.0)
    np.testing.assert_allclose(float(again.compute_loss(zt, zs)), expected, rtol=2e-5)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: losses.correlation_value_loss(np.zeros((4, 3)), np.zeros((4, 5))),
         r"same number of classes.*\(4, 3\).*\(4, 5\)"),
        (lambda: losses.kd_loss(np.zeros((4,)), np.zeros((4,))), r"\(batch, classes\)"),
        (lambda: losses.r2kd_loss(np.zeros((4, 3)), np.zeros((4, 3)), temperature=0),
         "`temperature` must be a positive number, received: 0"),
        (lambda: losses.spearman_rank_loss(np.zeros((4, 3)), np.zeros((4, 3)), mode="fast"),
         "`mode` must be one of .*'fast'"),
        (lambda: losses.dkd_loss(np.zeros((4, 3)), np.zeros((4, 3)), np.zeros((4, 2, 2))),
         r"received shape \(4, 2, 2\)"),
    ],
)
def test_bad_input_names_the_argument_and_value(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "module, names",
    [
        ("r2kd", ["correlation_value_loss", "spearman_rank_loss", "r2kd_loss", "RANK_MODES",
                  "CorrelationValueLoss", "SpearmanRankLoss", "R2KDLoss",
                  "CorrelationDistillation"]),
        ("kd", ["kd_loss", "KDLoss"]),
        ("dist", ["dist_loss", "DISTLoss"]),
        ("dkd", ["dkd_loss", "DKDLoss"]),
        ("_common", ["cosine_per_row", "COSINE_EPS"]),
    ],
)
def test_names_live_in_their_method_module_and_stay_importable_from_losses(module, names):
    defined = importlib.import_module(f"r2kd_keras.losses.{module}")
    for name in names:
        assert getattr(losses, name) is getattr(defined, name)


@pytest.mark.parametrize(
    "cls, fn",
    [
        (losses.CorrelationValueLoss, losses.correlation_value_loss),
        (losses.SpearmanRankLoss, losses.spearman_rank_loss),
        (losses.R2KDLoss, losses.r2kd_loss),
        (losses.KDLoss, losses.kd_loss),
        (losses.DISTLoss, losses.dist_loss),
        (losses.DKDLoss, losses.dkd_loss),
    ],
)
def test_loss_wrappers_default_to_the_function_name_and_check_temperature(cls, fn):
    assert cls().name == fn.__name__
    assert cls(2.0, name="mine").get_config()["name"] == "mine"
    with pytest.raises(ValueError, match="`temperature` must be a positive number"):
        cls(temperature=-1.0)


def test_rank_mode_errors_name_the_argument():
    with pytest.raises(ValueError, match="`mode` must be one of .*'fast'"):
        losses.SpearmanRankLoss(mode="fast")
    with pytest.raises(ValueError, match="`rank_mode` must be one of .*'fast'"):
        losses.R2KDLoss(rank_mode="fast")
