"""AutoAugment parity with torchvision: every op, bin and sign, pixel by pixel.

Two steps, because torchvision and TensorFlow rarely share an environment:

    # 1. in an environment with torch + torchvision (e.g. a throwaway venv):
    python benchmarks/autoaugment_parity.py reference --out /tmp/tv_ops.npz
    # 2. in this project's environment:
    python benchmarks/autoaugment_parity.py compare --reference /tmp/tv_ops.npz

Step 1 runs torchvision's own `_apply_op` (the function its `AutoAugment`
calls) on three uint8 versions of matplotlib's sample photograph and saves
the images with the magnitudes torchvision used. Step 2 applies
`r2kd_keras.autoaugment.apply_op` with our magnitudes and prints, per op,
the largest pixel difference and the smallest share of identical pixels.
It also checks that the policy tables equal torchvision's.
"""

import argparse
import json
import os

import numpy as np


def _photos():
    import matplotlib
    from PIL import Image

    path = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data",
                        "grace_hopper.jpg")
    source = Image.open(path).convert("RGB")
    return [np.asarray(source.resize((32, 32))),
            np.asarray(source.crop((100, 50, 400, 350)).resize((32, 32))),
            np.asarray(source.resize((40, 36)))]


def reference(out):
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import autoaugment as tv

    saved = {"policies": np.array(json.dumps(
        {p.value: tv.AutoAugment(p).policies for p in tv.AutoAugmentPolicy}))}
    for k, image in enumerate(_photos()):
        saved[f"{k}|input"] = image
        space = tv.AutoAugment()._augmentation_space(10, image.shape[:2])
        tensor = torch.from_numpy(image.copy()).permute(2, 0, 1).contiguous()
        for op, (magnitudes, signed) in space.items():
            for b in range(10):
                size = float(magnitudes[b].item()) if magnitudes.ndim > 0 else 0.0
                for sign in (1, -1) if signed else (1,):
                    result = tv._apply_op(tensor, op, sign * size,
                                          interpolation=InterpolationMode.NEAREST, fill=None)
                    saved[f"{k}|{op}|{b}|{sign}"] = result.permute(1, 2, 0).numpy()
    np.savez(out, **saved)
    print(f"wrote {len(saved)} arrays to {out}")


def compare(path):
    import tensorflow as tf

    from r2kd_keras.autoaugment import POLICIES, apply_op, magnitude

    saved = np.load(path)
    torch_policies = json.loads(str(saved["policies"]))
    for name, policy in torch_policies.items():
        ours = [[list(op) for op in sub] for sub in POLICIES[name]]
        print(f"policy {name}: {'equal to' if ours == policy else 'DIFFERENT from'} torchvision's")
    worst = {}
    for key in saved.files:
        parts = key.split("|")
        if len(parts) != 4:
            continue
        k, op, b, sign = parts[0], parts[1], int(parts[2]), int(parts[3])
        image = saved[f"{k}|input"].astype(np.float32)[None]
        ours = apply_op(tf.constant(image), op, sign * magnitude(op, b)).numpy()[0]
        diff = np.abs(ours - saved[key].astype(np.float32))
        largest, share = worst.get(op, (0.0, 1.0))
        worst[op] = (max(largest, float(diff.max())), min(share, float((diff == 0).mean())))
    print(f"{'op':<13} {'max |diff|':>10} {'min share identical':>20}")
    for op, (largest, share) in worst.items():
        print(f"{op:<13} {largest:>10.0f} {share:>20.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    sub.add_parser("reference").add_argument("--out", default="/tmp/tv_ops.npz")
    sub.add_parser("compare").add_argument("--reference", default="/tmp/tv_ops.npz")
    args = parser.parse_args()
    if args.step == "reference":
        reference(args.out)
    else:
        compare(args.reference)


if __name__ == "__main__":
    main()
