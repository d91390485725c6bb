"""The `hpexp` command: thin commands that forward to library functions.

    hpexp run studies/quickstart.yaml [--n-trials N] [--timeout S] [--workers N] [--set k=v ...]
    hpexp run studies/quickstart.yaml --around-best learning_rate [--seeds 5]   (around the best)
    hpexp worker STUDY --storage postgresql://... --tracking-uri http://...   (from any host)
    hpexp storage-proxy --storage postgresql://... --port P    (workers: --storage grpc://...)
    hpexp services up | down | status     (a local PostgreSQL and MLflow server for workers)
    hpexp list | show STUDY [--all] | best STUDY [--yaml] | ui | predict MODEL DATA.csv | datasets
    hpexp reproduce STUDY TRIAL    (train a trial again; exit 1 unless it matches bit for bit)
    hpexp reevaluate STUDY --top K --seeds S    (the top K and the baselines with S fresh seeds)
    hpexp report STUDY [--out DIR] [--color-by PARAM]   (report.html + report.md, also in MLflow)

Bad input prints one line on stderr and exits with code 2; run, worker and ui stopped by a
signal exit with 128 + its number (Ctrl-C 130, SIGTERM 143).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from hpexp.errors import DataError, HpexpError

DEFAULT_PORT = 5000


def _places(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--storage",
        help="Optuna storage: a journal file path (default optuna.journal) or a database URL "
        "(sqlite:///x.db, postgresql://...)",
    )
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///mlflow.db)")


def _study_run(p: argparse.ArgumentParser) -> None:
    """What `run` and `worker` take: the study, its budget, overrides, places, heartbeat."""
    p.add_argument("study", help="study file (studies/quickstart.yaml) or name under studies/")
    p.add_argument("--n-trials", type=int, help="total finished trials to reach")
    p.add_argument(
        "--timeout", type=_seconds, metavar="S", help="stop starting trials after S seconds"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a study-file field, e.g. --set fixed.optimizer=adam",
    )
    _places(p)
    p.add_argument(
        "--heartbeat",
        type=_positive_int,
        metavar="S",
        help="on a database storage: seconds between a worker's heartbeats (default 10); the "
        "trial of a worker silent for 3 heartbeats is re-run by the others",
    )


def _study_kwargs(args: argparse.Namespace) -> dict[str, object]:
    keys = ("n_trials", "timeout", "overrides", "storage", "tracking_uri", "heartbeat")
    return {k: getattr(args, k) for k in keys}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _seconds(text: str) -> float:
    """A finite number of seconds > 0 (not nan, inf or negative)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (exit code 2), like every other bad input."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(line.strip() for line in message.splitlines() if line.strip())
        self.exit(2, f"{self.prog}: error: {text}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    from hpexp import __version__

    parser = _Parser(
        prog="hpexp",
        description="Hyperparameter search for a NumPy L-layer network: Optuna searches, "
        "MLflow tracks.",
    )
    parser.add_argument("--version", action="version", version=f"hpexp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_study_commands(sub)
    _add_result_commands(sub)
    _add_store_commands(sub)
    return parser


def _add_study_commands(sub: Any) -> None:
    """run, worker, storage-proxy: commands that train a study's trials or serve its storage."""
    run = sub.add_parser("run", help="run or resume a study from a YAML file")
    _study_run(run)
    run.add_argument(
        "--workers",
        help="processes training at once on this host: a number or auto (one per core); "
        "default: the study file's workers, else 1",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--around-best",
        metavar="PARAM",
        help="instead of searching, train the study's best configuration with PARAM over values "
        "around its best one: float log ranges best × 1/10, 1/3, 1, 3, 10; int log ranges "
        "best × 1/4, 1/2, 1, 2, 4; other ranges best + k·(high − low)/8, k = −2..2; choices: "
        "every one (always inside the searched range); as the study STUDY-around-PARAM in the "
        "same storage, which ends with PARAM's comparison table",
    )
    run.add_argument(
        "--seeds",
        type=int,
        metavar="S",
        help="with --around-best: seeds per value, trained batched (2 to 100; default 5)",
    )
    run.add_argument(
        "--around-name",
        metavar="NAME",
        help="with --around-best: name the study NAME instead of STUDY-around-PARAM",
    )

    worker = sub.add_parser(
        "worker",
        help="join a study as one more worker (any host that reaches its storage) and train "
        "trials until its budget is reached",
    )
    _study_run(worker)

    proxy = sub.add_parser(
        "storage-proxy",
        help="serve a database storage to very many workers through Optuna's gRPC proxy "
        "(workers then pass --storage grpc://HOST:PORT)",
    )
    proxy.add_argument("--storage", required=True, help="the database (postgresql://...)")
    proxy.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    proxy.add_argument("--port", type=int, default=13000, help="port (default 13000)")


def _add_result_commands(sub: Any) -> None:
    """list, show, best, reproduce, reevaluate, report: commands that read a study's results."""
    ls = sub.add_parser("list", help="list the studies in the storage")
    _places(ls)

    show = sub.add_parser("show", help="a study's top trials (--all: every trial)")
    show.add_argument("study", help="study name")
    show.add_argument("--top", type=_positive_int, default=10, help="how many (default 10)")
    show.add_argument(
        "--all",
        action="store_true",
        help="list every trial with its status (complete, pruned, failed, interrupted, ...)",
    )
    _places(show)

    best = sub.add_parser("best", help="a study's best trial: params, metrics, run id")
    best.add_argument("study", help="study name")
    best.add_argument("--save", metavar="PATH", help="also save its model as PATH.npz/.json")
    best.add_argument(
        "--yaml",
        action="store_true",
        help="print only its configuration, as a fixed: block to paste into a study file",
    )
    _places(best)

    again = sub.add_parser(
        "reproduce",
        help="train a trial again from its record and compare bit for bit; exit 1 if it differs",
    )
    again.add_argument("study", help="study name")
    again.add_argument("trial", help="trial number, or the MLflow run id of one of its trials")
    _places(again)

    reeval = sub.add_parser(
        "reevaluate",
        help="retrain the top K configurations and the study's baselines with S fresh seeds "
        "each: mean ± 95%% interval, Welch's t test against the best, the winner's curse",
    )
    reeval.add_argument("study", help="study name")
    reeval.add_argument(
        "--top", type=int, default=3, metavar="K", help="configurations to retrain (default 3)"
    )
    reeval.add_argument(
        "--seeds", type=int, default=10, metavar="S", help="fresh seeds each, >= 2 (default 10)"
    )
    _places(reeval)

    report = sub.add_parser(
        "report",
        help="write a study's report: report.html (interactive figures, opens offline) and "
        "report.md (tables); both are logged to the study's MLflow run",
    )
    report.add_argument("study", help="study name")
    report.add_argument(
        "--out", metavar="DIR", help="folder to write into (default: hpexp-models/STUDY/)"
    )
    report.add_argument(
        "--color-by",
        metavar="PARAM",
        help="colour the learning curves by this parameter (default: the most important)",
    )
    _places(report)


def _add_store_commands(sub: Any) -> None:
    """sync, check, ui, predict, datasets, services: the stores, saved models and servers."""
    sync = sub.add_parser(
        "sync", help="rebuild what MLflow is missing or has wrong from the Optuna storage"
    )
    sync.add_argument("study", help="study name")
    _places(sync)

    check = sub.add_parser(
        "check", help="compare MLflow with the Optuna storage; exit 1 if they disagree"
    )
    check.add_argument("study", help="study name")
    _places(check)

    ui = sub.add_parser("ui", help="open the MLflow UI on the tracking store")
    ui.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    ui.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 5000)")
    ui.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="MLflow store")

    predict = sub.add_parser("predict", help="predict rows of a CSV file with a saved model")
    predict.add_argument("model", help="model path (PATH, PATH.npz or PATH.json)")
    predict.add_argument("data", help="CSV file with the model's feature columns")
    predict.add_argument("--output", "-o", help="write predictions to this CSV (default stdout)")

    sub.add_parser("datasets", help="list the built-in datasets and their options")

    services = sub.add_parser(
        "services", help="local PostgreSQL + MLflow server for many workers: up, down, status"
    )
    actions = services.add_subparsers(dest="action", metavar="ACTION", required=True)
    start = actions.add_parser("up", help="start them (or report them running)")
    start.add_argument("--pg-port", type=_positive_int, default=5433, metavar="N",
                       help="PostgreSQL's port (default 5433)")  # fmt: skip
    start.add_argument("--mlflow-port", type=_positive_int, default=5001, metavar="N",
                       help="the MLflow server's port (default 5001)")  # fmt: skip
    for action in (start, actions.add_parser("down", help="stop them; the data stays"),
                   actions.add_parser("status", help="what runs, on which port")):  # fmt: skip
        action.add_argument(
            "--root", help="their folder: data, logs, password file (default ./hpexp-services)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        from hpexp.services import use_local_pgpass

        use_local_pgpass()  # `make services` in this folder: its password file, never a URL
        return COMMANDS[args.command](args)
    except HpexpError as e:
        message = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
        print(f"hpexp: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or a study stopped by a signal: 128 + its number
        return 128 + int(getattr(e, "signum", signal.SIGINT))


def cmd_run(args: argparse.Namespace) -> int:
    import hpexp

    hpexp.run_study(
        args.study,
        workers=args.workers,
        progress=not args.no_progress,
        around_best=args.around_best,
        seeds=args.seeds,
        around_name=args.around_name,
        **_study_kwargs(args),
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import hpexp

    hpexp.work_study(args.study, **_study_kwargs(args))
    return 0


def cmd_storage_proxy(args: argparse.Namespace) -> int:
    from hpexp.search.proxy import serve_storage

    serve_storage(args.storage, host=args.host, port=args.port)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    import hpexp

    table = hpexp.list_studies(args.storage)
    print(table.to_string(index=False) if len(table) else "no studies yet; run: make study")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    import hpexp
    from hpexp.report.summary import all_trials, summary

    result = hpexp.load_study(args.study, storage=args.storage, tracking_uri=args.tracking_uri)
    print(all_trials(result) if args.all else summary(result, top=args.top))
    if result.spec.around_best and not args.all:
        from hpexp.report.summary import around_table

        print("\n" + around_table(result))
    return 0


def cmd_best(args: argparse.Namespace) -> int:
    import hpexp

    result = hpexp.load_study(args.study, storage=args.storage, tracking_uri=args.tracking_uri)
    trial = result.best_trial
    if args.yaml:  # YAML only (comments aside), to paste or pipe into a study file
        import yaml

        print(f"# study '{result.name}' best trial {trial.number}: ", end="")
        print(f"{result.spec.metric} {result.best_value:.6g}")
        if args.save:
            print(f"# model saved: {hpexp.save_model(result.best_model(), args.save)} (+ .json)")
        block = {"fixed": result.best_config()}
        print(yaml.safe_dump(block, sort_keys=False, default_flow_style=None), end="")
        return 0
    print(f"study '{result.name}' best trial {trial.number}")
    print(f"  {result.spec.metric}: {result.best_value:.6g}")
    for k, v in sorted(result.best_metrics.items()):
        print(f"  {k}: {v:.6g}")
    print("  params:")
    for k, v in trial.params.items():
        print(f"    {k}: {v}")
    print(
        f"  MLflow run: {result.best_run_id or 'not written yet (hpexp sync ' + result.name + ')'}"
    )
    if result.model_uri:
        print(f"  MLflow model: {result.model_uri}")
    if args.save:
        path = hpexp.save_model(result.best_model(), args.save)
        print(f"  model saved: {path} (+ .json)")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    import hpexp

    outcome = hpexp.reproduce(
        args.study, args.trial, storage=args.storage, tracking_uri=args.tracking_uri
    )
    for warning in outcome.warnings:
        print(f"hpexp: warning: {warning}", file=sys.stderr)
    print(outcome)
    return 0 if outcome.matches else 1


def cmd_reevaluate(args: argparse.Namespace) -> int:
    import hpexp
    from hpexp.report.reevaluation import reevaluation_text

    def warn(line: str) -> None:
        print(f"hpexp: warning: {line}", file=sys.stderr)

    frame = hpexp.reevaluate(
        args.study,
        top=args.top,
        seeds=args.seeds,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        progress=lambda line: print(line, file=sys.stderr),
        warn=warn,
    )
    for line in frame.attrs["warnings"]:
        warn(line)
    print(reevaluation_text(frame))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    import hpexp

    files = hpexp.report_study(
        args.study,
        out=args.out,
        color_by=args.color_by,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
    )
    size = files.html.stat().st_size / 1e6
    print(f"wrote {files.html} ({size:.1f} MB) and {files.markdown} in {files.seconds:.1f} s")
    if files.mlflow_run:
        print(f"  logged to the study's MLflow run {files.mlflow_run}")
    else:
        print(f"hpexp: warning: report not logged to MLflow: {files.not_logged}", file=sys.stderr)
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    import hpexp

    report = hpexp.sync_study(args.study, storage=args.storage, tracking_uri=args.tracking_uri)
    print(f"study '{args.study}': {report}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    import hpexp

    problems = hpexp.check_study(args.study, storage=args.storage, tracking_uri=args.tracking_uri)
    for line in problems:
        print(line)
    if problems:
        print(
            f"{len(problems)} difference(s); fix them with: hpexp sync {args.study}",
            file=sys.stderr,
        )
        return 1
    print(f"study '{args.study}': MLflow agrees with the Optuna storage")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from hpexp.tracking.ui import serve

    return serve(args.tracking_uri, host=args.host, port=args.port)


def cmd_predict(args: argparse.Namespace) -> int:
    import hpexp

    model = hpexp.load_model(args.model)  # checked completely before pandas is even imported
    from hpexp.predict import predict_csv

    table = predict_csv(model, args.data)
    if args.output:
        try:
            table.to_csv(args.output, index=False)
        except OSError as e:
            raise DataError(
                f"cannot write predictions to '{args.output}' ({e.strerror or e}); "
                "check that its folder exists and is writable"
            ) from None
        print(f"wrote {len(table)} predictions to {args.output}", file=sys.stderr)
    else:
        table.to_csv(sys.stdout, index=False)
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from hpexp.data import describe_datasets

    for name, text in describe_datasets().items():
        print(f"{name:<14} {text}")
    return 0


def cmd_services(args: argparse.Namespace) -> int:
    from hpexp import services

    if args.action == "down":
        services.down(args.root)
        print("stopped PostgreSQL and the MLflow server; their data stays")
        return 0
    if args.action == "status":
        for state in services.status(args.root).values():
            if state.running:
                health = "healthy" if state.healthy else "NOT answering"
                print(f"{state.name:<9} {state.url}  pid {state.pid}  {health}  log: {state.log}")
            else:
                print(f"{state.name:<9} stopped  log: {state.log}")
        return 0
    up = services.up(args.root, pg_port=args.pg_port, mlflow_port=args.mlflow_port)
    data = up.root / "postgres"
    shown = data.relative_to(Path.cwd()) if data.is_relative_to(Path.cwd()) else data
    print(
        f"PostgreSQL {up.pg_version} on 127.0.0.1:{up.pg_port} (data: {shown}), "
        f"MLflow server on {up.tracking_uri}"
    )
    print(f"  export PGPASSFILE={up.pgpass}      # the password lives only there (mode 600)")
    print(f"  hpexp worker STUDY --storage {up.storage_url} --tracking-uri {up.tracking_uri}")
    return 0


COMMANDS = {
    "run": cmd_run,
    "list": cmd_list,
    "show": cmd_show,
    "best": cmd_best,
    "reproduce": cmd_reproduce,
    "reevaluate": cmd_reevaluate,
    "report": cmd_report,
    "sync": cmd_sync,
    "check": cmd_check,
    "ui": cmd_ui,
    "predict": cmd_predict,
    "datasets": cmd_datasets,
    "services": cmd_services,
    "worker": cmd_worker,
    "storage-proxy": cmd_storage_proxy,
}

if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
