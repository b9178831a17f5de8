"""benchmarks/robustness.py: its pieces by hand (mCA, relative drop, paired
differences, the report's tables), its test sets against the loader's, and
(large) the study end to end on a tiny real Fashion-MNIST budget: it loads
the students benchmarks/accuracy.py saved instead of training them again,
resumes from its JSON and refuses other settings."""

import importlib.util
import json
import os
import re
import sys

import keras
import numpy as np
import pytest

from r2kd_keras import train
from r2kd_keras.data import CORRUPTIONS, corrupt

_DIR = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks")


def _load(name):
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark",
                                                  os.path.join(_DIR, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


robustness = _load("robustness")
accuracy = _load("accuracy")
# The modules robustness.py imports: the shared harness and its report.
study, report = sys.modules["study"], sys.modules["robustness_report"]
study_results = sys.modules["study_results"]

DEBIAN = "/usr/share/datasets/fashion-mnist"
needs_fashion = pytest.mark.skipif(not os.path.isdir(DEBIAN),
                                   reason="apt-get install dataset-fashion-mnist")
TINY = ["--train_subset", "512", "--epochs", "1", "--teacher_epochs", "1", "--seeds", "0",
        "--test_subset", "256", "--teacher", "resnet8", "--student", "resnet8",
        "--verbose", "0"]
CELL = re.compile(r"([\d.]+)(?: ± ([\d.]+))? \(n=(\d+)\)")
DIFFERENCE = re.compile(r"([+-][\d.]+)(?: ± ([\d.]+))? \((\d+) of (\d+) > 0\)")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _tables(md):
    """{(row label, column header): cell text} of every markdown table."""
    cells, header = {}, None
    for line in md.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        parts = [p.strip() for p in line.strip("|").split("|")]
        if header is None:
            header = parts
        elif not set(parts[0]) <= {"-"}:
            cells.update({(parts[0], h): text for h, text in zip(header[1:], parts[1:])})
    return cells


def _mean(cell):
    return float(CELL.fullmatch(cell).group(1))


def _record(clean, corrupted_mean, spread=0.02):
    """A corrupt-part record whose mCA is `corrupted_mean`."""
    offsets = np.linspace(-spread, spread, len(CORRUPTIONS))
    return {"top1": clean, "corrupted": {
        name: {"1": corrupted_mean + offset + 0.01, "5": corrupted_mean + offset - 0.01}
        for name, offset in zip(CORRUPTIONS, offsets)}}


def test_parts_severities_and_noise_rates_are_the_issues():
    assert robustness.PARTS == ("corrupt", "noise")
    assert robustness.SEVERITIES == (1, 3, 5) and robustness.NOISE_RATES == (0.2, 0.4)


def test_mean_corruption_accuracy_and_relative_drop_by_hand():
    record = _record(0.9, 0.6)
    # 8 corruptions x 2 severities, offsets symmetric about 0: mean 0.6.
    assert report.mean_corruption_accuracy(record) == pytest.approx(0.6)
    assert report.relative_drop(record) == pytest.approx(1 - 0.6 / 0.9)


def test_teacher_tracking_by_hand():
    results = study_results.Results.__new__(study_results.Results)
    teacher = {"top1": 0.9, "corrupted": {"a": {"1": 0.8, "5": 0.6},
                                          "b": {"1": 0.85, "5": 0.7}}}
    student = {"top1": 0.8, "corrupted": {"a": {"1": 0.5, "5": 0.7},
                                          "b": {"1": 0.6, "5": 0.75}}}
    results.data = {"runs": {"corrupt:teacher": {"0": teacher},
                             "corrupt:kd/none": {"0": student, "1": student}}}
    # Drops: teacher .10 .30 .05 .20, student .30 .10 .20 .05 -> |gaps| mean
    # .175; deviations from the common mean .1625 give cov -.025625 / var .036875.
    distance, correlation = report.teacher_tracking(results, "corrupt:kd/none")
    assert distance == pytest.approx(17.5)
    assert correlation == pytest.approx(-0.025625 / 0.036875)
    assert report.teacher_tracking(results, "corrupt:r2kd/none") is None


def test_report_tables_agree_with_the_numbers_by_hand(tmp_path):
    stem = str(tmp_path / "robustness-fashion_mnist")
    settings = {"dataset": "fashion_mnist", "teacher": "resnet14", "student": "resnet8",
                "epochs": 8, "teacher_epochs": 10, "train_subset": 8000, "val_subset": None,
                "batch_size": 64, "lr": 0.05, "teacher_dtype": "bfloat16",
                "severities": [1, 5], "corruption_seed": 0}
    results = study_results.Results(stem + ".json", settings)
    results.start_session("python benchmarks/robustness.py")
    runs = {
        "corrupt:r2kd/none": {"0": _record(0.88, 0.70), "1": _record(0.86, 0.66)},
        "corrupt:kd/none": {"0": _record(0.87, 0.60), "1": _record(0.87, 0.62)},
        "corrupt:teacher": {"0": _record(0.90, 0.65)},
        "noise0.2:r2kd/none": {"0": {"top1": 0.84}, "1": {"top1": 0.80}},
        "noise0.2:kd/none": {"0": {"top1": 0.83}, "1": {"top1": 0.82}},
        "noise0.4:kd/none": {"0": {"top1": 0.75}},
    }
    for name, by_seed in runs.items():
        for seed, record in by_seed.items():
            results.add_run(name, seed, record)
    noise_specs = study.select("kd/none,r2kd/none", study.METHODS_GRID)
    report.write_report(results, noise_specs, stem + ".md", stem + ".png")
    with open(stem + ".md") as f:
        md = f.read()
    cells = _tables(md)
    r2kd, kd = "R2KD, augment none", "KD, augment none"
    # R2KD: clean 87 ± sqrt(2); mCA 68 ± sqrt(8); drops 1 - .70/.88, 1 - .66/.86.
    assert CELL.fullmatch(cells[(r2kd, "clean")]).groups() == ("87.00", "1.41", "2")
    assert CELL.fullmatch(cells[(r2kd, "mCA")]).groups() == ("68.00", "2.83", "2")
    drops = 100 * np.array([1 - 0.70 / 0.88, 1 - 0.66 / 0.86])
    assert _mean(cells[(r2kd, "relative drop")]) == pytest.approx(drops.mean(), abs=0.005)
    assert cells[("teacher", "mCA")] == "65.00 (n=1)"
    # Per corruption, mean over severities (+-0.01) and seeds: the offsets.
    offsets = 100 * np.linspace(-0.02, 0.02, len(CORRUPTIONS))
    for name, offset in zip(CORRUPTIONS, offsets):
        assert float(cells[(kd, name)]) == pytest.approx(61 + offset, abs=0.005)
    # Paired R2KD - KD: clean +1, -1; mCA +10, +4; drop by hand.
    comparison = "R2KD - KD, augment none"
    clean = DIFFERENCE.fullmatch(cells[(comparison, "clean")]).groups()
    assert float(clean[0]) == pytest.approx(0.0) and clean[1:] == ("1.41", "1", "2")
    assert DIFFERENCE.fullmatch(cells[(comparison, "mCA")]).groups() == (
        "+7.00", "4.24", "2", "2")
    kd_drops = 100 * np.array([1 - 0.60 / 0.87, 1 - 0.62 / 0.87])
    drop = DIFFERENCE.fullmatch(cells[(comparison, "relative drop")]).groups()
    assert float(drop[0]) == pytest.approx((drops - kd_drops).mean(), abs=0.005)
    assert drop[2:] == ("0", "2")
    assert "R2KD - DIST" not in md  # no DIST run
    # Against the teacher (seed 0 only): the same offsets, so every set costs
    # R2KD 0.88 - 0.70 = 18 pp against the teacher's 25, KD 27: constant gaps.
    distance = "distance to the teacher's drops (pp)"
    assert (cells[(r2kd, distance)], cells[(r2kd, "correlation")]) == ("7.00", "1.000")
    assert (cells[(kd, distance)], cells[(kd, "correlation")]) == ("2.00", "1.000")
    # Part (b): the clean column is part (a)'s; 40% has KD on one seed only.
    assert cells[(kd, "clean labels (part a)")] == "87.00 ± 0.00 (n=2)"
    assert CELL.fullmatch(cells[(r2kd, "20% noisy labels")]).groups() == ("82.00", "2.83", "2")
    assert cells[(kd, "40% noisy labels")] == "75.00 (n=1)"
    assert cells[(r2kd, "40% noisy labels")] == "-"
    assert DIFFERENCE.fullmatch(cells[(comparison, "20% noisy labels")]).groups() == (
        "-0.50", "2.12", "1", "2")
    assert cells[(comparison, "40% noisy labels")] == "-"
    assert "severities 1, 5" in md and "corruption_seed" not in md
    with open(stem + ".png", "rb") as f:
        assert f.read(8) == PNG_SIGNATURE


@pytest.mark.parametrize("flags, message", [
    (["--parts", "corrupt,fog"], "--parts='corrupt,fog': pass a comma-separated subset"),
    (["--severities", "0,3"], "--severities='0,3' must be comma-separated integers from 1 to 5"),
    (["--noise_rates", "20"], "--noise_rates='20' must be comma-separated shares in"),
    (["--seeds", "a"], "--seeds='a' must be comma-separated integers"),
    (["--configs", "kd/mixup"], "--configs='kd/mixup' matches no configuration; use names"),
    (["--noise_configs", ""], "--noise_configs='' matches no configuration"),
])
def test_bad_flags_are_named(flags, message, capsys):
    with pytest.raises(SystemExit):
        robustness._parse_args(flags)
    assert message in capsys.readouterr().err


def test_quick_is_a_tiny_budget_into_runs():
    args = robustness._parse_args(["--quick"])
    assert (args.train_subset, args.epochs, args.teacher_epochs, args.test_subset) == (
        512, 1, 1, 1000)
    assert args.seeds == [0] and args.severities == [3]
    assert args.output_dir == "runs/robustness-quick"
    default = robustness._parse_args([])
    assert (default.train_subset, default.epochs, default.seeds, default.severities) == (
        8000, 8, [0, 1, 2], [1, 3, 5])
    assert default.output_dir == study.RESULTS_DIR
    assert [s.name for s in default.noise_specs] == [
        "none/none", "kd/none", "dist/none", "dkd/none", "r2kd/none"]


@needs_fashion
def test_test_sets_serve_the_loaders_test_images(tmp_path):
    config = train.TrainConfig(dataset="fashion_mnist", val_subset=500, train_subset=512)
    _, val_ds, info = train.load_data(config)
    sets = robustness.TestSets(config, info, (2,))
    served = np.concatenate([np.asarray(x) for x, _ in sets.dataset(sets.images)])
    loader = np.concatenate([np.asarray(x) for x, _ in val_ds])[:500]
    np.testing.assert_array_equal(served, loader)
    np.testing.assert_array_equal(sets.labels, np.concatenate([y for _, y in val_ds])[:500])
    np.testing.assert_array_equal(sets.corrupted("pixelate", 2),
                                  corrupt(sets.images, "pixelate", 2, seed=0))
    # A real (untrained) network: top-1 is argmax of its logits against the labels.
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    record = sets.evaluate(model)
    for images, key in ((sets.images, None), (sets.corrupted("contrast", 2), "contrast")):
        logits = np.concatenate([np.asarray(model(x)) for x, _ in sets.dataset(images)])
        expected = np.mean(logits.argmax(-1) == sets.labels)
        got = record["top1"] if key is None else record["corrupted"][key]["2"]
        assert got == pytest.approx(expected)
    assert set(record["corrupted"]) == set(CORRUPTIONS)


def _saved_models(cache):
    """{path relative to `cache`: modification time} of the saved networks."""
    return {os.path.relpath(os.path.join(root, f), cache): os.path.getmtime(
        os.path.join(root, f)) for root, _, files in os.walk(cache)
        for f in files if f.endswith(".keras")}


def _students(paths):
    """The configurations whose trained student (`.../students/<tag>/<name>/last.keras`)
    is among `paths`."""
    return {p.split(os.sep)[-2] for p in paths
            if os.path.basename(p) == "last.keras" and f"{os.sep}students{os.sep}" in
            os.sep + p}


@pytest.mark.large
@needs_fashion
def test_study_reuses_the_accuracy_grids_students_resumes_and_refuses_other_settings(
        tmp_path):
    out = str(tmp_path)
    accuracy.main(TINY + ["--configs", "none/none,kd/none", "--output_dir", out])
    with open(os.path.join(out, "accuracy-fashion_mnist.json")) as f:
        grid = json.load(f)
    cache = os.path.join(out, "cache")
    before = _saved_models(cache)
    assert _students(before) == {"kd-none", "none-none"}
    assert "teacher.keras" in {os.path.basename(p) for p in before}

    flags = TINY + ["--configs", "none/none,kd/none,r2kd/none", "--noise_configs",
                    "kd/none,r2kd/none", "--noise_rates", "0.4", "--severities", "5",
                    "--output_dir", out]
    robustness.main(flags)
    stem = os.path.join(out, "robustness-fashion_mnist")
    with open(stem + ".json") as f:
        data = json.load(f)
    after = _saved_models(cache)
    # The grid's teacher and students were loaded, not trained again ...
    assert {path: after[path] for path in before} == before
    assert data["runs"]["corrupt:kd/none"]["0"]["train_seconds"] is None
    # ... and are the same networks: the same clean top-1 (a near-tie of the
    # two evaluation paths may flip one of the 256 images).
    for name in ("none/none", "kd/none"):
        assert data["runs"][f"corrupt:{name}"]["0"]["top1"] == pytest.approx(
            grid["runs"][name]["0"]["top1"], abs=1.5 / 256)
    assert data["runs"]["corrupt:r2kd/none"]["0"]["train_seconds"] > 0
    new = set(after) - set(before)
    clean = [p for p in new if not p.startswith("labelnoise")]
    assert _students(clean) == {"r2kd-none"} and all("r2kd-none" in p for p in clean)
    noisy = [p for p in new if p.startswith("labelnoise0.4" + os.sep)]
    assert _students(noisy) == {"kd-none", "r2kd-none"}
    assert "teacher.keras" in {os.path.basename(p) for p in noisy}
    assert set(data["runs"]) == {"corrupt:none/none", "corrupt:kd/none", "corrupt:r2kd/none",
                                 "corrupt:teacher", "noise0.4:kd/none", "noise0.4:r2kd/none",
                                 "noise0.4:teacher"}
    for name, runs in data["runs"].items():
        record = runs["0"]
        assert 0.0 <= record["top1"] <= 1.0
        if name.startswith("corrupt"):
            assert set(record["corrupted"]) == set(CORRUPTIONS)
            assert all(list(r) == ["5"] and 0 <= r["5"] <= 1 for r in record["corrupted"].values())
    with open(stem + ".md") as f:
        cells = _tables(f.read())
    r2kd = data["runs"]["corrupt:r2kd/none"]["0"]
    assert _mean(cells[("R2KD, augment none", "clean")]) == pytest.approx(
        100 * r2kd["top1"], abs=0.005)
    assert _mean(cells[("R2KD, augment none", "mCA")]) == pytest.approx(
        100 * np.mean([r["5"] for r in r2kd["corrupted"].values()]), abs=0.005)
    assert _mean(cells[("KD, augment none", "40% noisy labels")]) == pytest.approx(
        100 * data["runs"]["noise0.4:kd/none"]["0"]["top1"], abs=0.005)
    with open(stem + ".png", "rb") as f:
        assert f.read(8) == PNG_SIGNATURE

    # A rerun reads what the JSON holds: an edited number survives, nothing retrains.
    data["runs"]["noise0.4:kd/none"]["0"]["top1"] = 0.4242
    with open(stem + ".json", "w") as f:
        json.dump(data, f)
    trained = _saved_models(cache)
    robustness.main(flags)
    assert _saved_models(cache) == trained
    with open(stem + ".json") as f:
        resumed = json.load(f)
    assert resumed["runs"] == data["runs"] and len(resumed["sessions"]) == 2
    with open(stem + ".md") as f:
        assert _mean(_tables(f.read())[("KD, augment none", "40% noisy labels")]) == 42.42

    with pytest.raises(ValueError, match=r"other settings \(\{'severities': \(\[5\], \[3\]\)\}"):
        robustness.main(flags[:-4] + ["--severities", "3", "--output_dir", out])
