"""The `r2kd` command: `r2kd distill`, `r2kd export`, `r2kd evaluate`.

`r2kd distill` is the runner (`r2kd_keras.train`) with its absl flags: every
flag of the example scripts means the same here. `r2kd export` is
`r2kd-export`. `r2kd evaluate` scores a `.keras` or `.tflite` file.
"""

import sys

USAGE = """\
usage: r2kd <command> [flags]    (also: python -m r2kd_keras <command> ...)

commands:
  distill   load your data and teacher (or train one), distil a student with R2KD
            or a baseline, prune it, export it to TFLite, write results.json,
            metrics.csv, curves.png and print a summary table
  export    a saved .keras student to a verified .tflite file (same as r2kd-export)
  evaluate  top-1, top-5, per-class accuracy and a confusion matrix of a .keras or
            .tflite model on an image folder or a named dataset

`r2kd <command> --help` lists that command's flags. Your own images, teacher and a
phone-sized student, half of its filters removed (a smaller, faster network) and
exported with int8:

  r2kd distill --dataset image_folder --data_dir photos/ --val_dir photos_val/ \\
      --teacher_model teacher.keras --student keras:MobileNetV3Small \\
      --student_sparsity 0.5 --prune_structure filters --prune_schedule polynomial \\
      --export int8 --epochs 30 --output_dir runs/photos
  r2kd evaluate runs/photos/student.tflite --data_dir photos_val/

Logging: warnings and above by default; --verbosity=0 shows TensorFlow's info logs.
"""

DISTILL_DOC = """\
r2kd distill: the whole job on your data.

  r2kd distill --dataset image_folder --data_dir DIR [--val_dir DIR | --val_fraction F]
      [--teacher_model teacher.keras | --teacher NAME [--teacher_weights FILE]]
      --student NAME [--student_sparsity 0.5 [--prune_structure filters]]
      [--export int8] --output_dir OUT

NAME: a zoo model (resnet8x4, mobilenetv2, ...), keras:<keras.applications model>
(keras:MobileNetV3Small, keras:EfficientNetB0, keras:ResNet50) or keras_hub:<preset
directory or preset name>. Without a teacher file a named teacher is trained first.
Running the same command again resumes from the last finished epoch.
"""

EVALUATE_DOC = """\
r2kd evaluate MODEL.keras|MODEL.tflite --data_dir DIR [--dataset NAME]

Top-1, top-5 and per-class accuracy; writes evaluation.json and confusion_matrix.png
to --output_dir (default: next to the model, <model>_eval/).
"""


def main(argv=None):
    """Runs `r2kd <command> ...`.

    Args:
        argv: the command line including the program name; None: `sys.argv`.

    Returns:
        The exit status (commands that fail exit with a message).

    Example:
    >>> main(["r2kd", "evaluate", "student.tflite", "--data_dir", "photos_val"])
    """
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, args = argv[1], argv[2:]
    if command not in _COMMANDS:
        print(f"r2kd: unknown command {command!r}; use one of "
              f"{', '.join(_COMMANDS)}.\n\n{USAGE}", file=sys.stderr)
        return 2
    return _COMMANDS[command](f"r2kd {command}", args)


def _run_absl(prog, args, doc, function, flags_module):
    from absl import app, flags

    # absl's --help prints the __main__ module's docstring and the flags that
    # are key to it: make the command's flags key flags there.
    sys.modules["__main__"].__doc__ = doc
    for flag in flags.FLAGS.get_flags_for_module(flags_module):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(function, argv=[prog, *args])  # exits with the command's status


def _distill(prog, args):
    from r2kd_keras import train

    train.define_flags(dataset="image_folder", output_dir="runs/r2kd")
    return _run_absl(prog, args, DISTILL_DOC, train.main, train.__name__)


def _export(prog, args):
    from r2kd_keras import export

    return export.main(args)


def _evaluate(prog, args):
    from absl import flags

    from r2kd_keras import train

    flags.DEFINE_string("data_dir", None, "Image folder (DIR/<class>/*.jpg|png; every "
                        "image is evaluated), or the named dataset's folder.")
    flags.DEFINE_enum("dataset", "image_folder", train.DATASETS,
                      "image_folder, or a named dataset (its validation split).")
    flags.DEFINE_integer("image_size", None, "Served image size (default: the model's).")
    flags.DEFINE_integer("batch_size", 64, "Images per batch.")
    flags.DEFINE_string("output_dir", None, "Where the report goes (default: "
                        "<model>_eval/ next to the model).")
    flags.DEFINE_integer("num_threads", 1, "LiteRT threads for a .tflite model.")
    return _run_absl(prog, args, EVALUATE_DOC, _evaluate_main, __name__)


def _evaluate_main(argv):
    from absl import app, flags

    from r2kd_keras import evaluate, logs

    if len(argv) != 2:
        raise app.UsageError(
            f"pass one model file (.keras or .tflite); got {argv[1:] or 'none'}.")
    logs.configure(logs.absl_verbosity())
    values = flags.FLAGS
    try:
        report = evaluate.evaluate_model(
            argv[1], data_dir=values.data_dir, dataset=values.dataset,
            image_size=values.image_size, batch_size=values.batch_size,
            output_dir=values.output_dir, num_threads=values.num_threads)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    print(report.summary())
    print(logs.format_outputs(report.output_dir))


_COMMANDS = {"distill": _distill, "export": _export, "evaluate": _evaluate}
