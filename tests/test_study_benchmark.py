"""benchmarks/study.py and study_results.py, the harness of the seeded
studies: the grid and its selection, the summaries and seed-paired
differences by hand, the settings a JSON keeps (the teachers' dtype as resolved, never "auto"), the refusal to
mix settings, and the host record of every session."""

import argparse
import importlib.util
import json
import os
import sys

import numpy as np
import pytest

from r2kd_keras import precision

_PATH = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "study.py")
sys.path.insert(0, os.path.dirname(_PATH))
_SPEC = importlib.util.spec_from_file_location("study_benchmark", _PATH)
study = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(study)
import study_results  # noqa: E402  (beside study.py)


def _args(*flags):
    parser = argparse.ArgumentParser()
    study.add_study_flags(parser)
    args = parser.parse_args(list(flags))
    args.data_dir, args.verbose = None, 0
    args.epochs, args.teacher_epochs, args.train_subset, args.test_subset = 8, 10, 8000, None
    return args


def test_grid_is_the_issues_twelve_configurations_and_the_reference_pruned_teacher():
    assert [c.name for c in study.GRID] == [
        "none/none", "none/cutmix", "kd/none", "kd/cutmix", "dist/none",
        "dist/cutmix", "dkd/none", "dkd/cutmix", "r2kd/none", "r2kd/cutmix",
        "r2kd-noblend/cutmix", "r2kd-softrank/cutmix", "r2kd-trainprune/cutmix"]
    noblend, soft, trainprune = study.GRID[-3:]
    assert (noblend.teacher_prune_rate, noblend.rank_mode) == (0.0, "exact")
    assert (soft.teacher_prune_rate, soft.rank_mode) == (0.1, "soft")
    assert (trainprune.teacher_prune_rate, trainprune.pruned_teacher_training) == (0.1, True)
    assert not any(c.pruned_teacher_training for c in study.GRID[:-1])
    assert study.METHODS_GRID == study.GRID[:10]


def test_select_matches_patterns_in_grid_order_and_names_a_miss():
    assert [c.name for c in study.select("r2kd*/cutmix, kd/none")] == [
        "kd/none", "r2kd/cutmix", "r2kd-noblend/cutmix", "r2kd-softrank/cutmix",
        "r2kd-trainprune/cutmix"]
    assert study.select("*") == list(study.GRID)
    with pytest.raises(ValueError, match="--configs='' matches no configuration"):
        study.select("")
    assert [s.name for s in study.select("*/none", study.METHODS_GRID)] == [
        "none/none", "kd/none", "dist/none", "dkd/none", "r2kd/none"]
    with pytest.raises(ValueError, match="--configs='kd/mixup' matches no configuration"):
        study.select("kd/mixup")
    # A variant outside the grid it is asked of is a miss, named with the flag.
    with pytest.raises(ValueError, match="--noise_configs='r2kd-softrank/cutmix' matches no"):
        study.select("r2kd-softrank/cutmix", study.METHODS_GRID, "--noise_configs")


def test_summary_is_mean_and_sample_std_in_percent():
    # By hand: mean 90; deviations -10, 0, 10 -> variance 200 / (3 - 1) = 100.
    assert study_results.summarize([0.8, 0.9, 1.0]) == {"mean": 90.0, "std": 10.0, "n": 3}
    assert study_results.summarize([0.5]) == {"mean": 50.0, "std": None, "n": 1}
    assert study_results.format_cell(study_results.summarize([0.8, 0.9, 1.0])) == "90.00 ± 10.00 (n=3)"
    assert study_results.format_cell(None) == "-"


def test_paired_differences_by_hand():
    # Common seeds 0 and 1: +2 and -1 pp -> mean 0.5, std sqrt(4.5).
    difference = study_results.paired({"0": 0.52, "1": 0.49, "2": 0.7}, {"0": 0.50, "1": 0.50})
    assert difference["mean"] == pytest.approx(0.5)
    assert difference["std"] == pytest.approx(np.sqrt(4.5))
    assert (difference["positive"], difference["n"]) == (1, 2)
    assert study_results.paired({"0": 0.5}, {"1": 0.5}) is None


@pytest.mark.parametrize("flag, stored", [("float32", "float32"), ("bfloat16", "bfloat16"),
                                          ("float16", "float16")])
def test_settings_keep_the_teachers_dtype_by_name(flag, stored):
    config, settings = study.study_config(_args("--teacher_dtype", flag), "fashion_mnist")
    assert settings["teacher_dtype"] == stored
    # The runner's spelling: None is float32.
    assert config.teacher_dtype == (None if flag == "float32" else flag)
    assert set(settings) == set(study.SETTINGS)


def test_auto_is_stored_as_what_it_resolved_to_on_this_host():
    config, settings = study.study_config(_args(), "fashion_mnist")
    resolved = precision.resolve_teacher_dtype("auto")
    assert settings["teacher_dtype"] == (resolved or "float32") != "auto"
    assert config.teacher_dtype == resolved


def test_students_of_other_teacher_dtypes_are_cached_apart():
    spec = study.GRID[0]
    bf16, _ = study.study_config(_args("--teacher_dtype", "bfloat16"), "fashion_mnist")
    fp32, _ = study.study_config(_args("--teacher_dtype", "float32"), "fashion_mnist")
    assert study.student_dir("c", bf16, spec) != study.student_dir("c", fp32, spec)
    assert study.student_file("c", fp32, spec).endswith(
        os.path.join("tfloat32", "none-none", "last.keras"))


def test_a_json_of_other_teacher_dtypes_is_refused_saying_what_to_pass(tmp_path):
    path = str(tmp_path / "accuracy-fashion_mnist.json")
    _, settings = study.study_config(_args("--teacher_dtype", "bfloat16"), "fashion_mnist")
    results = study_results.Results(path, settings)
    results.start_session("python benchmarks/accuracy.py --teacher_dtype bfloat16")
    results.add_run("kd/none", 0, {"top1": 0.8})
    _, other = study.study_config(_args("--teacher_dtype", "float32"), "fashion_mnist")
    with pytest.raises(ValueError) as raised:
        study_results.Results(path, other)
    message = str(raised.value)
    assert "{'teacher_dtype': ('bfloat16', 'float32')}" in message
    assert "pass --teacher_dtype bfloat16" in message
    # The same settings resume, with what the file holds.
    assert study_results.Results(path, settings).has("kd/none", 0)


def test_each_session_records_its_hosts_vector_units_and_the_footer_lists_them(tmp_path):
    with open("/proc/cpuinfo") as f:
        flags = set(next(line for line in f if line.startswith("flags")).split(":")[1].split())
    environment = study_results.environment()
    assert environment["cpu_isa"] == [f for f in study_results.ISA_FLAGS if f in flags]
    data = {"sessions": [
        {"command": "a", "load_average": 1.0, "wall_seconds": 60.0,
         "environment": {**environment, "cpu": "Old CPU"}},  # written before cpu_isa
        {"command": "b", "load_average": 2.0, "wall_seconds": 120.0, "environment": {
            **environment, "cpu": "New CPU", "cpu_isa": ["avx2", "avx512_bf16"]}},
    ]}
    del data["sessions"][0]["environment"]["cpu_isa"]
    footer = "\n".join(study_results.report_footer(data, str(tmp_path / "x.png")))
    assert "Old CPU in 1 session(s); New CPU (avx2, avx512_bf16) in 1 session(s)" in footer
    assert "Wall time: 3.0 min over 2 session(s); last session 2.0 min." in footer
    assert "`a`, `b`" in footer and "![chart](x.png)" in footer
    json.dumps(environment)  # stored in the JSON
