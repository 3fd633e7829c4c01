"""The ``edgelr`` command line: parse options, call one library function, report.

Library errors (EdgelrError) become ``Error: ...`` on stderr and exit 1 here and only
here; set EDGELR_DEBUG=1 to see the traceback instead. The training side (torch,
onnx) is imported inside the commands that need it, so ``edgelr --help`` and ``info``
on an ONNX file stay torch-free.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import sys
import threading
from pathlib import Path

import click

from edgelr import __version__
from edgelr.errors import ConfigError, EdgelrError, MissingExtraError

DEFAULT_CHECKPOINT = Path("models") / "model.pt"


class _CList(click.ParamType):
    """``--C``: one number, or with --cv a comma-separated list of them."""

    name = "C[,C...]"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        try:
            values = [float(v) for v in str(value).split(",")]
        except ValueError:
            self.fail(f"{value!r} is not a number or a comma-separated list of numbers (e.g. 0.01,0.1,1)", param, ctx)
        return values


class _Threshold(click.ParamType):
    """``train --threshold``: a probability, max-f1, precision:P or recall:R (edgelr.threshold)."""

    name = "T|max-f1|precision:P|recall:R"

    def convert(self, value, param, ctx):
        from edgelr.threshold import ThresholdRule, parse_threshold

        if isinstance(value, ThresholdRule):
            return value
        try:
            return parse_threshold(str(value))
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


class _Group(click.Group):
    """Turns library errors into one-line messages with exit status 1, and interruptions into 130 / 143."""

    def invoke(self, ctx: click.Context):
        from edgelr.interrupts import INTERRUPTIONS, catch_interruptions, exit_status

        with catch_interruptions():  # SIGTERM unwinds like Ctrl-C: temporary files are removed on the way out
            try:
                return super().invoke(ctx)
            except INTERRUPTIONS as exc:  # the unwinding has removed every temporary file by now
                click.echo(f"Interrupted ({exc.__class__.__name__}): no output was written.", err=True)
                sys.exit(exit_status(exc))
            except Exception as exc:
                if not _is_user_error(exc) or os.environ.get("EDGELR_DEBUG") == "1":
                    raise
                raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgelr")
def main() -> None:
    """Train logistic regression in PyTorch, export it to ONNX, score it anywhere.

    Example: edgelr train && edgelr export
    """


def run() -> None:
    """The console script and ``python -m edgelr``: ``main``, then, once torch is loaded, a quick exit.

    At interpreter exit Python tears down every module and its objects: ~0.3 s of one
    core for torch's ~1,100 modules (``python -c "import torch"`` took 1.57 s, 1.25 s when
    it ended in os._exit), paid by every training command after its work is done. Once
    the command has returned, its exit handlers have run (temporary files, torch's own)
    and its output is flushed, only memory is left to release, which the kernel does at
    once. Unlike a normal exit, no thread still running is waited for: the commands join
    every thread of theirs before they return but ``_import_meanwhile``'s, which is
    dropped where a command failed while torch was loading.
    """
    try:
        main()
    except SystemExit as exc:
        if "torch" not in sys.modules or not (exc.code is None or isinstance(exc.code, int)):
            raise
        _exit_now(exc.code or 0)


def _exit_now(status: int) -> None:
    import atexit

    atexit._run_exitfuncs()  # the exit handlers a normal exit runs (weakref.finalize, tempfile, torch's)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:  # a reader that went away: nothing left to tell it
            pass
        except (OSError, ValueError):  # a full disk, a closed stream: output was lost, as Python's own exit says
            status = status or 120
    os._exit(status)


@main.command()
@click.argument("data", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dataset", type=click.Choice(["students", "pumps"]),
              help="A built-in data set instead of DATA: the tutorial's students (the default without DATA), "
                   "or pumps, readings with text columns and empty cells.")
@click.option("--label", help="Target column (default: the last column).")
@click.option("--features", help="Comma-separated feature columns (default: all but the label).")
@click.option("--C", "C", type=_CList(), default="1.0", show_default=True,
              help="Inverse L2 strength, as scikit-learn's C; with --cv, a comma-separated list to choose from.")
@click.option("--cv", "cv", type=click.IntRange(min=2),
              help="Choose C among the --C values by the mean held-out log loss over this many stratified folds "
                   "of the training rows, then fit on all of them at the best.")
@click.option("--threshold", type=_Threshold(),
              help="Binary models: label p > T. T a probability, or chosen on the validation rows: max-f1, "
                   "precision:P (the smallest threshold reaching precision P), recall:R (the largest reaching "
                   "recall R). Default 0.5.")
@click.option("--penalty", type=click.Choice(["l2", "none"]), default="l2", show_default=True)
@click.option("--l1-ratio", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="The L1 share of the penalty, as scikit-learn's l1_ratio: 0 L2, 1 L1 (exact zeros: "
                   "columns a device need not measure), between elastic net.")
@click.option("--optimizer", type=click.Choice(["lbfgs", "sgd", "adam"]), default="lbfgs", show_default=True)
@click.option("--lr", type=float, help="Learning rate (default: 1 lbfgs, 0.1 sgd, 0.01 adam).")
@click.option("--epochs", type=click.IntRange(min=0),
              help="Passes (sgd/adam) or most iterations (lbfgs); default 100 (lbfgs with --l1-ratio: 1000).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Mini-batch rows for sgd/adam (default: full batch).")
@click.option("--class-weight", type=click.Choice(["none", "balanced"]), default="none", show_default=True)
@click.option("--weight-column", help="Column of per-row sample weights (numbers >= 0), as scikit-learn's "
                                      "sample_weight; not a feature.")
@click.option("--standardize/--no-standardize", default=True, show_default=True,
              help="Scale numeric features by the training mean and std (part of the exported graph).")
@click.option("--categorical", help="Comma-separated columns of numbers to read as categories (zip codes, years).")
@click.option("--impute", type=click.Choice(["mean", "median"]),
              help="Fill missing numeric cells with the training mean or median; a missing text cell becomes a "
                   "category of its own (default: a missing cell is an error).")
@click.option("--missing-indicator", is_flag=True,
              help="With --impute: a 0/1 input per numeric column that had missing cells in training.")
@click.option("--max-categories", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Most distinct values a text column may have (more looks like an id column).")
@click.option("--val-fraction", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.2, show_default=True,
              help="Stratified share of rows held out for validation; 0 trains on every row.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split and of mini-batch order.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--memory-budget", help="e.g. 256MB; a CSV that would need more is streamed from a disk cache "
                                      "in chunks (default: half the RAM).")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_CHECKPOINT,
              show_default=True, help="Checkpoint to write.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout and nothing else.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write plots and model_card.md (on the validation rows) into this folder.")
def train(data, dataset, label, features, C, cv, threshold, penalty, l1_ratio, optimizer, lr, epochs, batch_size,
          class_weight, weight_column, standardize, categorical, impute, missing_indicator, max_categories,
          val_fraction, seed, device, memory_budget, out, as_json, report_dir) -> None:
    """Train a logistic-regression classifier on DATA (CSV with a header row).

    Columns of words are categories (one-hot inside the model); missing cells need
    --impute. Without DATA, trains on a built-in data set (--dataset; the tutorial's six
    students by default). Under torchrun, trains data-parallel; rank 0 writes the
    checkpoint and prints.

    Example: edgelr train data.csv --label passed --impute median -o models/model.pt

    Example: edgelr train data.csv --C 0.01,0.1,1,10 --cv 5 --threshold recall:0.98
    """
    _require_training_extra("train", ("torch",))
    if report_dir is not None:
        _require_report_extra("train --report")  # before training, not after minutes of it
    from edgelr.encoding import EncodingSpec
    from edgelr.outofcore import default_budget, needs_streaming, parse_size
    from edgelr.selection import check_grid
    from edgelr.settings import train_settings

    if data is not None and dataset is not None:
        raise click.UsageError(f"DATA ({data}) and --dataset {dataset} both name the training rows; give one")
    Cs, C = C, C[0]
    check_grid(Cs, cv, penalty=penalty)
    if threshold is not None and threshold.needs_rows and val_fraction == 0:
        raise ConfigError(f"--threshold {threshold} is chosen on the validation rows, and --val-fraction 0 leaves "
                          "none; expected a --val-fraction above 0 (or a threshold given as a number)")
    budget = parse_size(memory_budget) if memory_budget is not None else default_budget()
    feature_list = _names(features)
    params = dict(
        C=C, penalty=penalty, l1_ratio=l1_ratio, class_weight=None if class_weight == "none" else class_weight,
        standardize=standardize, optimizer=optimizer, lr=lr, epochs=epochs, batch_size=batch_size,
        seed=seed, device=device, impute=impute, missing_indicator=missing_indicator,
        categorical=tuple(_names(categorical) or ()), max_categories=max_categories,
    )
    # Checked without torch: bad settings fail before it loads and before any row is read.
    settings = train_settings(C=C, penalty=penalty, l1_ratio=l1_ratio, optimizer=optimizer, lr=lr, epochs=epochs,
                              batch_size=batch_size, seed=seed, class_weight=params["class_weight"])
    EncodingSpec(impute=impute, missing_indicator=missing_indicator, standardize=standardize).validate()
    streamed = data is not None and needs_streaming(data, budget)
    if streamed and report_dir is not None:
        raise ConfigError(f"{data}: --report scores rows in memory, and this file is past the memory budget; "
                          "expected 'edgelr report' on a sample of the rows instead")
    if cv is not None and (streamed or {"RANK", "WORLD_SIZE"} <= set(os.environ)):
        where = f"{data} is past the memory budget" if streamed else "this run is under torchrun"
        raise ConfigError(f"--cv fits its folds in one process on rows in memory, and {where}; expected "
                          "cross-validation on a sample of the rows in one process, then --C at the chosen value")
    if weight_column is not None and data is None:
        raise ConfigError(f"--weight-column {weight_column}: the built-in data sets have no weights; expected a CSV "
                          "with a column of per-row weights")
    cluster = _torchrun_cluster(settings, device)
    if cluster is None:
        _import_meanwhile("edgelr.workflow")  # torch and the training code (~1 s) while the rows are read
    main_rank = cluster is None or cluster.is_main
    try:
        with _ProgressBar(enabled=not as_json and main_rank, total=settings.resolved_epochs) as progress:
            result, rows, estimator = _train_job(data or dataset, params, out, label=label, features=feature_list,
                                                 budget=budget, streamed=streamed, val_fraction=val_fraction,
                                                 progress=progress, cluster=cluster, whole=report_dir is not None,
                                                 threshold=threshold, Cs=Cs, cv=cv, weight=weight_column)
    finally:
        if cluster is not None:
            cluster.close()
    if main_rank:
        if report_dir is not None:
            from edgelr.workflow import report_training

            _echo_report(report_training(rows, result, report_dir))
        world_size = cluster.world_size if cluster is not None else None
        if as_json:
            summary = {"checkpoint": result.checkpoint, "history": result.history, "metrics": result.metrics,
                       **({"threshold": result.threshold} if result.threshold is not None else {}),
                       **({"cv": result.cv.to_json()} if result.cv is not None else {})}
            click.echo(json.dumps({**summary, **({"world_size": world_size} if world_size else {})}, allow_nan=False))
        else:
            _echo_training(result, estimator, streamed=streamed, world_size=world_size)
    if cluster is not None:
        _end_rank()


def _names(option: str | None) -> list[str] | None:
    """A comma-separated column list option as names (None when not given)."""
    return [f.strip() for f in option.split(",") if f.strip()] if option else None


def _end_rank() -> None:
    """End a torchrun rank whose work is done without running C++ static destructors.

    gloo's threads sometimes abort a rank at interpreter teardown ("terminate called
    without an active exception", about 1 run in 12 on a loaded 2-core machine), after
    the checkpoint and the output are complete, and torchrun then reports the run as
    failed. Everything is written and the process group destroyed by now.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _torchrun_cluster(settings, device: str):
    """The torchrun cluster this process belongs to, or None outside torchrun."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None  # checked first: torch.distributed takes ~1 s to import
    from edgelr.distributed import check_supported, from_environment
    from edgelr.train import resolve_device

    check_supported(settings)
    return from_environment(resolve_device(device))


def _echo_training(result, estimator, *, streamed: bool, world_size: int | None) -> None:
    """The end-of-training summary: data, encoding, loss, metrics side by side, checkpoint."""
    from edgelr.info import cv_lines, encoding_lines, metrics_table

    n_features = estimator.n_features_in_
    d, h = result.data, result.history
    mode = " (streamed from a disk cache)" if streamed else ""
    ranks = f" on {world_size} ranks" if world_size else ""
    click.echo(f"trained on {d['source']}{mode}{ranks}: {d['rows']} rows ({d['train_rows']} train, "
               f"{d['validation_rows']} validation), {n_features} features, {len(d['class_counts'])} classes")
    for line in encoding_lines(estimator.categories_, estimator.impute, estimator.encoding_.indicator_names):
        click.echo(line)
    if result.cv is not None:
        for line in cv_lines(result.cv.to_json(), len(result.cv.fold_losses)):
            click.echo(line)
    if result.threshold is not None:
        click.echo(f"  threshold   {result.threshold:.6g} (class {estimator.classes_[1]} when p > threshold)")
    click.echo(f"  loss        {h[0]['loss']:.6f} at epoch 0 -> {h[-1]['loss']:.6f} at epoch {h[-1]['epoch']}")
    for line in metrics_table(result.metrics):
        click.echo(line)
    click.echo(f"checkpoint: {result.checkpoint}")


@main.command()
@click.argument("checkpoint", required=False, type=click.Path(path_type=Path), default=DEFAULT_CHECKPOINT)
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="ONNX file to write (default: the checkpoint's name with .onnx).")
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV whose rows join the parity check (columns matched by name).")
@click.option("--opset", type=int, help="ONNX opset (default: the exporter's).")
@click.option("--atol", type=float, default=1e-5, show_default=True, help="Absolute tolerance on probabilities.")
@click.option("--rtol", type=float, default=1e-4, show_default=True, help="Relative tolerance on probabilities.")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
              help="Binary models: the graph labels p > T instead of the checkpoint's threshold.")
@click.option("--ort", "ort_format", is_flag=True,
              help="Also write the ORT-format model (.ort) and its required-operators config, "
                   "for onnxruntime's mobile and minimal builds.")
def export(checkpoint, out, data, opset, atol, rtol, threshold, ort_format) -> None:
    """Export CHECKPOINT to ONNX and prove onnxruntime matches torch.

    Writes nothing unless the parity check passes.

    Example: edgelr export models/model.pt -o models/model.onnx --data train.csv --threshold 0.3
    """
    _require_training_extra("export")
    from edgelr.export import export_checkpoint

    out = out or checkpoint.with_suffix(".onnx")
    result = export_checkpoint(checkpoint, out, data=data, opset=opset, atol=atol, rtol=rtol, ort_format=ort_format,
                               threshold=threshold)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    for line in result.report.lines():
        click.echo(line)
    click.echo(f"exported {result.path} ({result.graph} graph)")
    if result.ort_report is not None:
        click.echo(result.ort_report.lines()[0].replace("parity:", "ORT parity:", 1))
        click.echo(f"exported {' and '.join(result.ort_paths)}")


@main.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV whose rows join the parity check (columns matched by name).")
@click.option("--atol", type=float, default=1e-5, show_default=True, help="Absolute tolerance on probabilities.")
@click.option("--rtol", type=float, default=1e-4, show_default=True, help="Relative tolerance on probabilities.")
def verify(checkpoint, model, data, atol, rtol) -> None:
    """Check that the ONNX MODEL gives CHECKPOINT's answers in onnxruntime.

    Example: edgelr verify models/model.pt models/model.onnx
    """
    _require_training_extra("verify")
    from edgelr.export import verify_model

    report = verify_model(checkpoint, model, data=data, atol=atol, rtol=rtol)
    for line in report.lines():
        click.echo(line)
    click.echo(f"verified {model} against {checkpoint}")


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--out", "-o", type=click.Path(dir_okay=False, allow_dash=True),
              help="File to write, CSV or JSON Lines by its extension (.jsonl); default or '-': stdout, "
                   "in the input's format.")
@click.option("--format", "in_format", type=click.Choice(["csv", "jsonl"]),
              help="The input's format (default: DATA's extension; csv for stdin).")
@click.option("--keep", metavar="COLS", help="Comma-separated input columns copied into the output first, as they are.")
@click.option("--explain", is_flag=True,
              help="Add each input column's contribution to the logit (binary: of the positive class; "
                   "multiclass: of the predicted class): contribution_<column>.")
@click.option("--strict", is_flag=True,
              help="Values outside their training range or unseen categories are an error (exit 1) instead "
                   "of a warning. With -o nothing is written; on stdout, the batch holding the first such "
                   "row is not written, nor anything after it.")
@click.option("--threads", type=click.IntRange(min=1),
              help="Threads that score a big batch's chunks at once (default: the cores there are).")
def predict(model, data, out, in_format, keep, explain, strict, threads) -> None:
    """Score DATA (CSV, JSON Lines, or - for stdin) with an exported MODEL; no torch needed.

    Writes a `label` column (the class name) and one `probability_<class>` column per
    class (JSON Lines: `label` and `probabilities`). Feature columns are matched by name;
    other columns are ignored. Rows arriving on a pipe are answered one by one as they
    come. Values outside the training data's range and categories never seen in training
    are counted, with one warning line per kind on stderr.

    Example: edgelr predict models/model.onnx new_rows.csv -o scores.csv

    Example: tail -f readings.jsonl | edgelr predict model.onnx - --format jsonl --keep sensor_id
    """
    from edgelr.runtime import Predictor
    from edgelr.scoring import predict_rows
    from edgelr.streams import format_of

    predictor = Predictor(model, threads=threads)
    in_format = format_of(data, in_format) if data != "-" else (in_format or "csv")
    to_stdout = out is None or out == "-"
    out_format = in_format if to_stdout else format_of(out)
    options = dict(in_format=in_format, out_format=out_format, keep=_names(keep) or (), explain=explain,
                   strict=strict)
    progress = _ScoringProgress.for_input(data, to_stdout)
    try:
        if to_stdout:
            with _rows_out() as rows_out:  # every row in the pipe before the drift warnings and the exit
                result = predict_rows(predictor, data, rows_out, progress=progress, **options)
        else:
            from edgelr.fileio import atomic_path

            with atomic_path(out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
                result = predict_rows(predictor, data, handle, progress=progress, **options)
    finally:
        if progress is not None:
            progress.close()
    for line in result.drift.lines():
        click.echo(f"warning: {line}", err=True)
    if not to_stdout:
        click.echo(f"wrote {result.rows} predictions to {out}", err=True)


def _rows_out():
    """Where predict writes its rows on stdout: for a pipe or a socket, which a stalled reader can fill, a
    writer whose wait hears a signal (``interrupts.ThreadedWriter``); else ``sys.stdout`` itself."""
    from edgelr.interrupts import ThreadedWriter
    from edgelr.streams import is_live

    if not is_live(sys.stdout) or sys.stdout.isatty():
        return contextlib.nullcontext(sys.stdout)
    sys.stdout.flush()  # what was written before comes first
    return ThreadedWriter(sys.stdout.fileno(), sys.stdout.encoding, sys.stdout.errors or "strict")


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--label", required=True, help="Column (JSON Lines: key) holding the true class.")
@click.option("--format", "in_format", type=click.Choice(["csv", "jsonl"]),
              help="The input's format (default: DATA's extension; csv for stdin).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object.")
def evaluate(model, data, label, in_format, as_json) -> None:
    """Metrics of an exported MODEL on labelled DATA (CSV, JSON Lines, or - for stdin); no torch needed.

    Example: edgelr evaluate models/model.onnx test.csv --label passed
    """
    from edgelr.info import encoding_lines, metrics_table
    from edgelr.runtime import Predictor
    from edgelr.scoring import evaluate_rows

    predictor = Predictor(model)
    metrics = evaluate_rows(predictor, data, label, in_format=in_format)
    if as_json:
        click.echo(json.dumps(metrics))
        return
    for line in [*encoding_lines(predictor.categories, predictor.impute), *metrics_table({"evaluation": metrics})]:
        click.echo(line)


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
def info(path) -> None:
    """Summarize a checkpoint (.pt) or an exported ONNX model.

    Example: edgelr info models/model.onnx
    """
    from edgelr.info import describe

    for line in describe(path):
        click.echo(line)


@main.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the PNG plots and model_card.md.")
@click.option("--label", help="Column holding the true class (default: the checkpoint's label column).")
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path),
              help="Exported ONNX model whose parity figures go in the card "
                   "(default: CHECKPOINT's name with .onnx, when it exists).")
def report(checkpoint, data, out_dir, label, model) -> None:
    """Plots and a model card of CHECKPOINT scored on labelled DATA.csv.

    Loss curve, confusion matrix, ROC and precision-recall curves (and a calibration
    plot for binary models) as PNG files, and model_card.md showing them with the
    data summary, settings, metrics and export parity.

    Example: edgelr report models/model.pt test.csv -o reports/
    """
    _require_report_extra("report")
    _require_training_extra("report", ("torch",))
    from edgelr.workflow import report_checkpoint

    _echo_report(report_checkpoint(checkpoint, data, out_dir, label=label, model=model))


def _train_job(data, params: dict, out, *, label, features, budget, streamed, val_fraction, progress, cluster,
               whole, threshold=None, Cs=None, cv=None, weight=None):
    """(TrainResult, Dataset or None, the fitted LogisticRegression(**params)): in memory, or streamed when DATA
    is past the budget.

    The rows are read before the training code is imported (``_import_meanwhile`` loads
    it meanwhile). Under torchrun each rank reads only its share of the rows, unless
    ``whole``: the report draws every held-out row on rank 0.
    """
    from edgelr.data import STUDENTS_NAME, ReadOptions, builtin, read_csv

    options = ReadOptions(categorical=params["categorical"], impute=params["impute"] is not None,
                          max_categories=params["max_categories"])
    dataset = None  # streamed: train_streamed reads the file chunk by chunk
    if not streamed and (isinstance(data, str) or data is None):  # a built-in data set (--dataset), or none
        dataset = builtin(data or STUDENTS_NAME, options, label=label, features=features)
    elif not streamed and cluster is not None and not whole:
        from edgelr.distributed import read_share

        dataset = read_share(data, label=label, features=features, cluster=cluster, options=options,
                             weight=weight)  # its rows
    elif not streamed:
        dataset = read_csv(data, label=label, features=features, options=options, weight=weight)
    from edgelr.estimator import LogisticRegression
    from edgelr.workflow import train_checkpoint, train_streamed

    estimator = LogisticRegression(**params)
    if streamed:
        return train_streamed(data, estimator, out, budget=budget, label=label, features=features,
                              val_fraction=val_fraction, progress=progress, cluster=cluster,
                              threshold=threshold, weight=weight), None, estimator
    result = train_checkpoint(dataset, estimator, out, val_fraction=val_fraction, progress=progress, cluster=cluster,
                              threshold=threshold, Cs=Cs, cv=cv)
    return result, dataset, estimator


def _import_meanwhile(module: str) -> None:
    """Import ``module`` on a thread while this one goes on (reading the rows).

    Importing torch takes about a second of one core, while polars parses a CSV on
    threads of its own, outside the GIL: the two overlap wherever a core is free. On 2
    cores polars keeps both busy and the gain was within noise (read + import 3.1-3.3 s
    either way on 1M x 50); with more cores the import's second can hide. A later import of
    the module waits for this one (the import lock); an error is left for that import
    to raise. The thread is not a daemon: an early exit waits for it rather than tearing
    torch down half-loaded.
    """
    def load() -> None:
        with contextlib.suppress(Exception):
            importlib.import_module(module)

    threading.Thread(target=load, name=f"import {module}").start()


def _is_user_error(exc: Exception) -> bool:
    """EdgelrError, or the standalone runtime's PredictorError (which cannot subclass it)."""
    runtime = sys.modules.get("edgelr.runtime")  # only loaded by commands that score
    return isinstance(exc, EdgelrError) or (runtime is not None and isinstance(exc, runtime.PredictorError))


def _require_training_extra(command: str, modules: tuple[str, ...] = ("torch", "onnx", "onnxscript")) -> None:
    _require_extra(command, "train", modules)


def _require_report_extra(command: str) -> None:
    _require_extra(command, "report", ("matplotlib",))


def _require_extra(command: str, extra: str, modules: tuple[str, ...]) -> None:
    """Fail with one line, before any work, not with an ImportError later, on an install without the extra."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtraError(
            f"'edgelr {command}' needs {', '.join(missing)}, which this install lacks; "
            f"install the {'training' if extra == 'train' else extra} extra: pip install 'edgelr[{extra}]'"
        )


def _echo_report(report) -> None:
    """Notes and the written files on stderr: stdout stays free for --json."""
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"report: {report.card} ({len(report.files) - 1} plots in {report.folder})", err=True)


class _ProgressBar:
    """A progress bar on stderr when it is a terminal; a no-op callback otherwise."""

    def __init__(self, *, enabled: bool, total: int):
        self.enabled = enabled and sys.stderr.isatty()
        self.total = total
        self._bar = None

    def __enter__(self):
        if not self.enabled:
            return None
        self._bar = click.progressbar(length=self.total, label="training", file=sys.stderr,
                                      show_eta=False, show_percent=True)
        self._bar.__enter__()
        return self._update

    def _update(self, epoch: int, loss: float) -> None:
        self._bar.label = f"training (loss {loss:.6f})"
        self._bar.update(1)

    def __exit__(self, *exc_info):
        if self._bar is not None:
            self._bar.__exit__(*exc_info)
        return False


class _ScoringProgress:
    """``predict``'s progress on stderr, for a file's run past ``DELAY`` seconds when stderr is a terminal.

    Called with the rows written after each batch; ``bytes`` is told the input read (the fast
    CSV path), which gives the percentage. Never in a pipe; not when the predictions
    themselves go to the same terminal.
    """

    DELAY = 1.0  # seconds before the bar shows: short runs print nothing
    EVERY = 0.2  # seconds between redraws

    def __init__(self, total_bytes: int):
        import time

        self._clock = time.monotonic
        self.start = self._clock()
        self.total, self.done, self.last, self.shown = total_bytes, 0, 0.0, False

    @classmethod
    def for_input(cls, data: str, to_stdout: bool):
        if data == "-" or not sys.stderr.isatty() or (to_stdout and sys.stdout.isatty()):
            return None
        try:
            return cls(os.path.getsize(data))
        except OSError:
            return None

    def bytes(self, n: int) -> None:
        self.done += n

    def __call__(self, rows: int) -> None:
        now = self._clock()
        if now - self.start < self.DELAY or now - self.last < self.EVERY:
            return
        self.last = now
        line = f"scoring: {rows:,} rows"
        if self.done and self.total:
            share = min(self.done / self.total, 1.0)
            line = f"scoring [{'#' * int(share * 30):<30}] {share:4.0%}, {rows:,} rows"
        sys.stderr.write(f"\r{line}")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
