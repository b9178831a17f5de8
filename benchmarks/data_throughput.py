"""Input-pipeline throughput against the rate a training step consumes images,
measured in the same run.

    python benchmarks/data_throughput.py [--files 2000 --batch 64 --steps 20]

Prints images/s of
  (a) the TinyImageNet pipeline (`r2kd_keras.data.tiny_imagenet`) on generated
      64x64 JPEG files in a temporary `tiny-imagenet-200/` tree: first epoch
      (read + decode) and a cached epoch (`cache=True`);
  (b) the CIFAR-like in-memory pipeline (`build_pipeline` on uint8 arrays,
      pad 4 + crop + flip + normalise);
  (c) the second-view augmenters of `r2kd_keras.augment` on a 32x32 batch;
  (d) the consumption rate: one train step of a resnet8x4 student
      (`r2kd_keras.models.get_model`, or a conv proxy of the same size when the
      models package is absent) at 32x32 and 64x64. A distillation step does
      more work per image than this plain step, so it consumes images more
      slowly: comparing the pipeline with (d) is conservative.
The pipeline keeps up when (a)/(b) exceed (d) at the same image size.
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from r2kd_keras import augment, data  # noqa: E402


def write_tiny_imagenet(root, n_files, n_classes=20, seed=0):
    """A `tiny-imagenet-200/` tree of random-texture 64x64 JPEGs (natural
    photos compress similarly at ~2-3 kB each)."""
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "tiny-imagenet-200")
    wnids = [f"n{i:08d}" for i in range(n_classes)]
    os.makedirs(os.path.join(base, "val", "images"))
    with open(os.path.join(base, "wnids.txt"), "w") as f:
        f.write("\n".join(wnids) + "\n")
    annotations = []
    for i in range(n_files):
        wnid = wnids[i % n_classes]
        # Upsampled coarse noise plus fine noise: a JPEG of about the size of a
        # natural 64x64 photo, not of pure noise.
        coarse = tf.image.resize(rng.uniform(0, 255, (16, 16, 3)), (64, 64)).numpy()
        image = np.clip(coarse + rng.normal(0, 8, coarse.shape), 0, 255).astype(np.uint8)
        encoded = tf.io.encode_jpeg(image, quality=90).numpy()
        folder = os.path.join(base, "train", wnid, "images")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{wnid}_{i}.JPEG"), "wb") as f:
            f.write(encoded)
        if i < n_files // 10:
            with open(os.path.join(base, "val", "images", f"val_{i}.JPEG"), "wb") as f:
                f.write(encoded)
            annotations.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
    with open(os.path.join(base, "val", "val_annotations.txt"), "w") as f:
        f.write("\n".join(annotations) + "\n")
    return base


def images_per_second(ds, batch, max_batches=None, warmup=2):
    iterator = iter(ds)
    for _ in range(warmup):
        next(iterator)
    count, start = 0, time.perf_counter()
    for i, (x, _) in enumerate(iterator):
        count += int(x.shape[0])
        if max_batches and i + 1 >= max_batches:
            break
    return count / (time.perf_counter() - start)


def consumption_model(size, classes):
    try:
        from r2kd_keras.models import get_model

        return get_model("resnet8x4", classes, (size, size, 3)), "resnet8x4"
    except ImportError:
        # resnet8x4-sized proxy (~1.2M parameters, 4 conv stages).
        layers = [keras.Input((size, size, 3))]
        for width in (32, 64, 128, 256):
            layers += [keras.layers.Conv2D(width, 3, padding="same", activation="relu"),
                       keras.layers.Conv2D(width, 3, padding="same", activation="relu"),
                       keras.layers.MaxPooling2D()]
        layers += [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(classes)]
        return keras.Sequential(layers), "conv proxy"


def train_step_rate(size, batch, steps, classes=200):
    model, name = consumption_model(size, classes)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).normal(size=(batch * steps, size, size, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, classes, batch * steps)
    model.fit(x[:batch * 2], y[:batch * 2], batch_size=batch, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    return batch * steps / (time.perf_counter() - start), name


def augmenter_rates(batch, steps):
    x = tf.random.normal((batch, 32, 32, 3))
    y = tf.random.uniform((batch,), 0, 100, tf.int32)
    teacher = tf.function(lambda images: tf.reduce_mean(images, [1, 2])[:, :1] * tf.ones((1, 100)))
    rates = {}
    for name in ("mixup", "cutmix", "cutout", "randaugment", "autoaugment", "augmix",
                 "cutmixpick"):
        aug = augment.make_augmenter(name, 100, 32, seed=0)
        kwargs = {"teacher": teacher} if aug.requires_teacher else {}
        step = tf.function(lambda a, b: aug({"images": a, "labels": b}, **kwargs)["images"])
        step(x, y)
        start = time.perf_counter()
        for _ in range(steps):
            step(x, y).numpy()
        rates[name] = batch * steps / (time.perf_counter() - start)
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"{os.cpu_count()} CPUs, batch {args.batch}")

    root = tempfile.mkdtemp()
    try:
        start = time.perf_counter()
        write_tiny_imagenet(root, args.files)
        print(f"wrote {args.files} 64x64 JPEGs in {time.perf_counter() - start:.1f} s")
        results = {k: [] for k in ("tiny first epoch", "tiny cached epoch", "cifar in-memory")}
        cifar = data.build_pipeline(
            tf.data.Dataset.from_tensor_slices((
                np.random.default_rng(0).integers(0, 256, (10000, 32, 32, 3), dtype=np.uint8),
                np.random.default_rng(1).integers(0, 100, 10000))),
            training=True, batch_size=args.batch, pad=4, normalization="cifar100")
        for _ in range(args.rounds):
            train_ds, _, _ = data.tiny_imagenet(root, batch_size=args.batch)
            results["tiny first epoch"].append(images_per_second(train_ds, args.batch))
            cached, _, _ = data.tiny_imagenet(root, batch_size=args.batch, cache=True)
            for _ in cached:  # fills the cache
                pass
            results["tiny cached epoch"].append(images_per_second(cached, args.batch))
            results["cifar in-memory"].append(images_per_second(cifar, args.batch, 100))
    finally:
        shutil.rmtree(root)
    consume32, model_name = train_step_rate(32, args.batch, args.steps)
    consume64, _ = train_step_rate(64, args.batch, args.steps)
    print(f"\n{'pipeline':<28}{'images/s (median)':>20}")
    for name, values in results.items():
        print(f"{name:<28}{statistics.median(values):>20,.0f}")
    print(f"\n{'augmenter (32x32, tf.function)':<34}{'images/s':>14}")
    for name, rate in augmenter_rates(args.batch, args.steps).items():
        print(f"{name:<34}{rate:>14,.0f}")
    print(f"\nconsumption: {model_name} plain train step, batch {args.batch}")
    print(f"{'32x32':<28}{consume32:>20,.0f}")
    print(f"{'64x64':<28}{consume64:>20,.0f}")
    tiny = statistics.median(results["tiny first epoch"])
    print(f"\nratios (> 1: the pipeline keeps up): TinyImageNet from files / 64x64 step "
          f"= {tiny / consume64:.1f}; CIFAR in-memory / 32x32 step = "
          f"{statistics.median(results['cifar in-memory']) / consume32:.1f}")


if __name__ == "__main__":
    main()
