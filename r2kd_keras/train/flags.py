"""absl flags from `TrainConfig`'s field metadata, the flag table of the
docs, and the command-line entry point `main`."""

import dataclasses
import os
import sys

from r2kd_keras import logs
from r2kd_keras.callbacks import CheckpointWriteError, TrainingInterrupted
from r2kd_keras.train.config import TrainConfig, field_choices
from r2kd_keras.train.report import format_table
from r2kd_keras.train.run import run


def _flag_choices(field):
    choices = field_choices(field)
    return None if choices is None else [c for c in choices if c is not None]


def define_flags(**defaults):
    """Defines one absl flag per `TrainConfig` field (idempotent).

    Args:
        **defaults: new defaults, e.g. `dataset="cifar100"`.

    Example:
    >>> define_flags(dataset="cifar100", teacher="resnet32x4", student="resnet8x4")
    >>> app.run(main)
    """
    from absl import flags

    unknown = set(defaults) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise ValueError(f"define_flags got unknown fields {sorted(unknown)}.")
    for field in dataclasses.fields(TrainConfig):
        if field.name in flags.FLAGS:
            continue
        default = defaults.get(field.name, field.default)
        help_text = field.metadata["help"]
        choices = _flag_choices(field)
        if choices is not None:
            flags.DEFINE_enum(field.name, default, choices, help_text)
        elif field.type is bool:
            flags.DEFINE_bool(field.name, default, help_text)
        elif field.type is int:
            flags.DEFINE_integer(field.name, default, help_text)
        elif field.type is float:
            flags.DEFINE_float(field.name, default, help_text)
        else:
            flags.DEFINE_string(field.name, default, help_text)


def config_from_flags(flag_values=None):
    """A `TrainConfig` from the parsed absl flags.

    Example:
    >>> config = config_from_flags()
    """
    from absl import flags

    flag_values = flag_values or flags.FLAGS
    return TrainConfig(**{
        f.name: flag_values[f.name].value for f in dataclasses.fields(TrainConfig)
    })


def flag_table():
    """The runner's flags as a markdown table (the list in docs/runner.md).

    Returns:
        str: one row per `TrainConfig` field: flag, default, choices, whether
        a resumed run must keep it, and the help text.

    Example:
    >>> print(flag_table())
    """
    lines = ["| flag | default | choices | fixed on resume | meaning |",
             "|---|---|---|---|---|"]
    for field in dataclasses.fields(TrainConfig):
        choices = _flag_choices(field)
        lines.append(
            f"| `--{field.name}` | `{field.default!r}` | "
            f"{', '.join(choices) if choices else '-'} | "
            f"{'yes' if field.metadata['affects_results'] else 'no'} | "
            f"{field.metadata['help']} |")
    return "\n".join(lines) + "\n"


def main(argv, methods=None, config=None):
    """absl entry point: runs the experiment of the flags, prints a summary,
    and turns bad input, failing writes and interruptions into a one-line
    error (exit 1; 143 when interrupted).

    Args:
        argv: leftover command-line arguments (must be empty).
        methods: see `run`.
        config: a `TrainConfig`; None: from the flags.

    Example:
    >>> app.run(main)
    """
    if len(argv) > 1:
        raise SystemExit(f"error: unexpected arguments {argv[1:]}")
    config = config or config_from_flags()
    logs.configure(logs.absl_verbosity())
    try:
        results = run(config, methods=methods)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    except CheckpointWriteError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        # Keras leaves the h5py file of a failed weights write open; freeing it
        # at interpreter exit would fail the same write again, with a traceback.
        os._exit(1)
    except (TrainingInterrupted, KeyboardInterrupt) as error:
        print(f"Interrupted ({error or 'keyboard'}): the last finished epoch is saved "
              f"in {config.output_dir}; run the same command again to resume.",
              file=sys.stderr, flush=True)
        sys.stdout.flush()
        # Everything worth keeping is on disk; a normal interpreter exit can
        # deadlock destroying the tf.data iterator the signal interrupted.
        os._exit(143)
    print(format_table(results))
    if (results["teacher"] or {}).get("warning"):
        print(f"warning: {results['teacher']['warning']}")
    print(f"wall time {results['wall_seconds']:.0f} s; outputs in {config.output_dir}")
    print(logs.format_outputs(config.output_dir))
