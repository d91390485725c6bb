"""How hpexp scales, measured side by side in one run:

1. throughput: `hpexp run STUDY --workers 1` against `--workers 2` on the same study and seed
   (trials per minute and the speed-up), for the quickstart study and MNIST-1D: over the
   command's whole wall time (its start and end included: imports, stores, the dataset,
   starting workers, MLflow brought up to date) and while the trials ran. Two workers may
   train more iterations than one: with trials side by side the median pruner has fewer
   finished trials to compare with, and stops fewer trials early;
2. the storage ceiling: 8, 32 and 64 simulated workers (processes that ask, report and tell
   as fast as they can) on the journal file, on PostgreSQL and through Optuna's gRPC storage
   proxy in front of it: operations per second, p50/p95 latency per operation, saturation;
3. under load and faults: 4 workers on one study, two of them killed (kill -9) mid-trial:
   exactly the budget finished, no duplicate or lost MLflow runs, `hpexp check` clean.

PostgreSQL rows need PostgreSQL's server programs (`hpexp services` starts a throwaway cluster
in a temporary folder); without them they are skipped with a note. Stores are created before
the clocks start. The whole default run takes 8-11 minutes on a 2-core machine. MNIST-1D runs
30 trials: with fewer, the end of the budget (one worker still training its last trial while
the other has none left) weighs on the speed-up more than it does in a real study.

The machine's speed varies a lot over time (at moments it is 10x slower: other jobs share its
cores), so single figures are noisy: compare figures of one run with each other, and rerun a
section (--only) before reading much into one number. Each measurement starts with a line on how
busy the machine is (the load average, and how fast two CPU-bound processes run together
against one alone: 2.0x on two idle cores); while it says about 1.0x, two workers cannot be
faster than one, whatever hpexp does.

    make bench            # or: python benchmarks/scaling.py [--only throughput|storage|faults]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("throughput", "storage", "faults")
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1"}
LIMIT_S = 900  # any one hpexp command; a wait that runs over it is an error


# -- processes and stores -------------------------------------------------------------------------


def start_hpexp(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    """`python -m hpexp ARGS` in `cwd`, its output going to files in `cwd` (not to pipes: the
    background MLflow writer it leaves behind inherits them, and a pipe would stay open until
    the writer ends, so waiting for the output would time the writer too)."""
    with open(cwd / "hpexp.out", "wb") as out, open(cwd / "hpexp.err", "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "hpexp", *args],
            cwd=cwd,
            env=ENV,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )


def finish(proc: subprocess.Popen[bytes], cwd: Path, limit: float = LIMIT_S) -> tuple[str, str]:
    """Wait for `proc` (from `start_hpexp`); its stdout and stderr."""
    proc.wait(timeout=limit)
    out = (cwd / "hpexp.out").read_text(errors="replace")
    return out, (cwd / "hpexp.err").read_text(errors="replace")


def hpexp(*args: str, cwd: Path, limit: float = LIMIT_S) -> tuple[int, str, str]:
    """`python -m hpexp ARGS` in `cwd`: (exit code, stdout, stderr)."""
    proc = start_hpexp(*args, cwd=cwd)
    out, err = finish(proc, cwd, limit)
    return proc.returncode, out, err


def pids_in(where: Path, marker: bytes) -> list[int]:
    """Live processes whose command line holds `marker` and whose working folder is `where`."""
    where = where.resolve()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes()
            cwd = Path(os.readlink(entry / "cwd"))
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in argv and cwd == where and state != "Z":
            found.append(int(entry.name))
    return found


def wait_for_writers(where: Path, limit: float = LIMIT_S) -> float:
    """Seconds until no background MLflow writer (`python -m hpexp.background`) works in
    `where`; one still there after `limit` seconds is killed, with a warning."""
    start = time.perf_counter()
    while pids := pids_in(where, b"hpexp.background"):
        if time.perf_counter() - start > limit:
            print(f"  warning: the MLflow writer in {where} ran over {limit:.0f} s; killed")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    return time.perf_counter() - start


_STORE: Path | None = None


def mlflow_store(where: Path) -> None:
    """An empty MLflow SQLite store at `where`/mlflow.db, so that no timing includes building
    its schema (built once, as benchmarks/tracking.py does, then copied)."""
    global _STORE
    if _STORE is None:
        import logging

        from mlflow.tracking import MlflowClient

        folder = Path(tempfile.mkdtemp(prefix="hpexp-scaling-store-"))
        logging.getLogger("mlflow").setLevel(logging.WARNING)  # no "Creating tables" lines
        MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
        _STORE = folder / "mlflow.db"
    shutil.copyfile(_STORE, where / "mlflow.db")


def journal_trials(where: Path, name: str) -> list[Any]:
    """Study `name`'s trials as `where`/optuna.journal holds them now (read only)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    path = where / "optuna.journal"
    if not path.is_file():
        return []
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    except KeyError:
        return []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SPIN = (
    "import time; t = time.perf_counter(); sum(range(12_000_000)); print(time.perf_counter() - t)"
)


def machine_now() -> str:
    """How busy the machine is now: the load average, and how much faster two CPU-bound
    processes together get through their work than one alone (2.0x on two idle cores)."""

    def spin(n: int) -> list[float]:
        procs = [
            subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True)
            for _ in range(n)
        ]
        return [float(p.communicate()[0]) for p in procs]

    alone = spin(1)[0]
    together = spin(2)
    ratio = 2 * alone / max(together)
    load = os.getloadavg()[0]
    return (
        f"machine now: load average {load:.1f} on {os.cpu_count()} cores; two CPU-bound "
        f"processes run at {ratio:.1f}x the speed of one"
    )


# -- 1. throughput: 1 vs 2 workers ----------------------------------------------------------------


def one_run(
    study_file: Path, name: str, n_trials: int, workers: int
) -> tuple[float, int, int, float]:
    """(wall seconds, trials that count against the budget, training iterations run, seconds
    from the first trial's start to the last one's end) of `hpexp run` with `workers` workers
    in a fresh folder."""
    from hpexp.search.states import counts_against_budget

    with tempfile.TemporaryDirectory(prefix="hpexp-scaling-") as tmp:
        where = Path(tmp)
        mlflow_store(where)
        start = time.perf_counter()
        code, out, err = hpexp(
            "run",
            str(study_file),
            "--workers",
            str(workers),
            "--n-trials",
            str(n_trials),
            "--no-progress",
            cwd=where,
        )
        wall = time.perf_counter() - start
        after = wait_for_writers(where)
        if code != 0:
            print(f"  hpexp run --workers {workers} exited with {code}:")
            print("    " + "\n    ".join((err or out).strip().splitlines()[-8:]))
        trials = journal_trials(where, name)
        counted = [t for t in trials if counts_against_budget(t)]
        iterations = sum(
            int((t.user_attrs.get("record") or {}).get("iterations_run", 0)) for t in counted
        )
        durations = [
            (t.datetime_complete - t.datetime_start).total_seconds()
            for t in trials
            if t.datetime_complete is not None and t.datetime_start is not None
        ]
        mean = sum(durations) / max(len(durations), 1)
        window = trials_window(trials)
        tail = ""
        if workers > 1:  # at the end of a fixed budget, a worker with no trial left waits
            tail = f"; one worker trained alone for the last {alone_at_the_end(trials):.1f} s"
        print(
            f"    --workers {workers}: {len(counted):>3} trials in {wall:6.1f} s = "
            f"{len(counted) / wall * 60:6.1f} trials/min, {iterations / wall:6.0f} training "
            f"iterations/s ({iterations} in all); {mean:4.1f} s per trial, workers in trials "
            f"{sum(durations) / (workers * wall):4.0%} of the wall time; writer done "
            f"{after:.1f} s later{tail}"
        )
        print(
            f"      while trials ran ({window:5.1f} s, first start to last end): "
            f"{len(counted) / window * 60:6.1f} trials/min; the rest of the wall, "
            f"{wall - window:.1f} s, is the command's start (imports, stores, data, workers) "
            "and its end (MLflow up to date)"
        )
        return wall, len(counted), iterations, window


def trials_window(trials: list[Any]) -> float:
    """Seconds from the first trial's start to the last trial's end (the study's trials
    running, without the command's start and end around them)."""
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    ends = [t.datetime_complete for t in trials if t.datetime_complete is not None]
    if not starts or not ends:
        return float("nan")
    return (max(ends) - min(starts)).total_seconds()


def alone_at_the_end(trials: list[Any]) -> float:
    """Seconds between the first and the last worker's last finished trial: at the end of a
    fixed budget, the workers that find no trial left wait for the others' last trials."""
    last: dict[str, Any] = {}
    for t in trials:
        worker = t.user_attrs.get("worker")
        if worker and t.datetime_complete is not None:
            last[worker] = max(last.get(worker, t.datetime_complete), t.datetime_complete)
    if len(last) < 2:
        return 0.0
    return (max(last.values()) - min(last.values())).total_seconds()


def same_trials(study_file: Path, n_trials: int, folder: Path) -> Path:
    """A copy of `study_file` that first runs `n_trials` fixed configurations (drawn at random
    with the study's seed, as `enqueue:` entries), so 1 and 2 workers train the same trials."""
    import optuna
    import yaml

    import hpexp
    from hpexp.search.space import suggest

    spec = hpexp.load_spec(study_file)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    draw = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=spec.seed))
    configs = []
    for _ in range(n_trials):
        params = suggest(draw.ask(), spec)
        units = [params.pop(f"hidden_units_{i}") for i in range(1, 100)
                 if f"hidden_units_{i}" in params]  # fmt: skip
        configs.append({**params, **({"hidden_units": units} if units else {})})
    doc = yaml.safe_load(study_file.read_text())
    doc["enqueue"] = configs
    copy = folder / study_file.name
    copy.write_text(yaml.safe_dump(doc, sort_keys=False))
    return copy


def throughput(runs: list[tuple[Path, int, float]]) -> None:
    import hpexp

    cores = os.cpu_count() or 1
    print(f"\n1. Throughput, 1 vs 2 workers, same study, seed and trials, on {cores} cores")
    print("   (both runs train the same configurations, drawn at random with the study's seed;")
    print("    1 worker leaves a core to the MLflow writer, 2 workers take one core each and")
    print("    the writer runs on idle time; pruning may still differ a little between runs)")
    for study_file, n_trials, target in runs:
        name = hpexp.load_spec(study_file).name
        print(f"\n  {study_file.relative_to(ROOT)}: {n_trials} trials   ({machine_now()})")
        with tempfile.TemporaryDirectory(prefix="hpexp-scaling-file-") as folder:
            fixed = same_trials(study_file, n_trials, Path(folder))
            one = one_run(fixed, name, n_trials, 1)
            two = one_run(fixed, name, n_trials, 2)
        per_min = [n / wall for wall, n, _, _ in (one, two)]
        per_it = [it / wall for wall, _, it, _ in (one, two)]
        running = [n / window for _, n, _, window in (one, two)]
        speedup = per_min[1] / per_min[0] if per_min[0] else float("nan")
        by_work = per_it[1] / per_it[0] if per_it[0] else float("nan")
        in_trials = running[1] / running[0] if running[0] else float("nan")
        verdict = "meets" if speedup >= target else "BELOW"
        print(
            f"    speed-up: {speedup:.2f}x trials/min over the command's wall ({verdict} the "
            f"target >= {target:.1f}x), {by_work:.2f}x training iterations/s; "
            f"{in_trials:.2f}x trials/min while trials ran"
        )


# -- 2. the storage ceiling -----------------------------------------------------------------------

OPS = ("ask", "suggest", "report", "tell")
REPORTS = 3  # intermediate values per simulated trial


def open_storage(kind: str, target: str) -> Any:
    """The storage a simulated worker (or this process) uses: journal file, PostgreSQL, proxy."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(target))
    if kind == "postgresql":
        return optuna.storages.RDBStorage(target)
    host, port = target.rsplit(":", 1)
    proxy = optuna.storages.GrpcStorageProxy(host=host, port=int(port))
    proxy.wait_server_ready(timeout=120)
    return proxy


def describe(e: BaseException) -> str:
    """One line: the exception, or the one it came from (Optuna wraps database errors)."""
    e = e.__cause__ or e.__context__ or e
    return f"{type(e).__name__}: {str(e).strip()}".splitlines()[0][:200]


def sim_worker(
    kind: str,
    target: str,
    study: str,
    env: dict[str, str],
    ready: Any,
    go: Any,
    window: Any,
    results: Any,
) -> None:
    """One simulated worker: open the storage and the study, say ready, wait for the common
    start, then ask (+ one suggest), report REPORTS times and tell until the window closes.
    Puts {op: [latency seconds of the ops that ended inside the window]} on `results`."""
    os.environ.update(env)
    import optuna

    lat: dict[str, list[float]] = {op: [] for op in OPS}
    errors, first = 0, ""
    try:
        storage = open_storage(kind, target)
        sampler = optuna.samplers.RandomSampler(seed=os.getpid())
        s = optuna.load_study(study_name=study, storage=storage, sampler=sampler)
    except Exception as e:
        ready.put(describe(e))
        results.put({"lat": lat, "errors": 0, "first": "", "failed": True})
        return
    ready.put("")
    go.wait()
    start, end = window[0], window[1]
    while time.monotonic() < start:
        time.sleep(0.001)

    def timed(op: str, call: Any, *args: Any) -> Any:
        t0 = time.monotonic()
        out = call(*args)
        t1 = time.monotonic()
        if t1 <= end:
            lat[op].append(t1 - t0)
        return out

    while time.monotonic() < end:
        try:
            trial = timed("ask", s.ask)
            x = timed("suggest", trial.suggest_float, "x", 0.0, 1.0)
            for step in range(REPORTS):
                timed("report", trial.report, x * (step + 1), step)
            timed("tell", s.tell, trial, x)
        except Exception as e:
            errors += 1
            first = first or describe(e)
            time.sleep(0.01)
    results.put({"lat": lat, "errors": errors, "first": first, "failed": False})


def measure_storage(
    ctx: Any, kind: str, target: str, workers: int, seconds: float, env: dict[str, str]
) -> dict[str, Any]:
    """Start `workers` simulated workers on a fresh study, release them together, and gather
    their latencies."""
    import numpy as np
    import optuna

    study = f"ceiling-{kind}-{workers}-{os.getpid()}-{time.time_ns()}"
    optuna.create_study(study_name=study, storage=open_storage(kind, target), direction="maximize")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    window = ctx.Array("d", 2)
    procs = [
        ctx.Process(
            target=sim_worker,
            args=(kind, target, study, env, ready, go, window, results),
            daemon=True,
        )
        for _ in range(workers)
    ]
    setup = time.perf_counter()
    for p in procs:
        p.start()
    failed = [m for m in (ready.get(timeout=LIMIT_S) for _ in procs) if m]
    setup = time.perf_counter() - setup
    now = time.monotonic()
    window[0], window[1] = now + 0.5, now + 0.5 + seconds
    go.set()
    gathered = [results.get(timeout=seconds + LIMIT_S) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()
            p.join()
    lat = {op: np.array([x for g in gathered for x in g["lat"][op]]) for op in OPS}
    ops = sum(len(a) for a in lat.values())
    return {
        "trials_s": len(lat["tell"]) / seconds,
        "ops_s": ops / seconds,
        "pct": {
            op: np.percentile(a, [50, 95]) * 1000 if len(a) else [np.nan] * 2
            for op, a in lat.items()
        },
        "errors": sum(g["errors"] for g in gathered),
        "first": next((g["first"] for g in gathered if g["first"] and not g["failed"]), ""),
        "failed": failed,
        "setup": setup,
    }


@contextlib.contextmanager
def grpc_proxy(url: str, where: Path, env: dict[str, str]) -> Any:
    """`hpexp storage-proxy` in front of `url`; yields "127.0.0.1:PORT" once it accepts."""
    port = free_port()
    log = open(where / f"proxy-{port}.log", "wb")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpexp", "storage-proxy", "--storage", url, "--port", str(port)],
        cwd=where,
        env={**ENV, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the storage proxy exited with {proc.returncode}: "
                    + (where / f"proxy-{port}.log").read_text()[-500:]
                )
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the storage proxy did not accept connections in 120 s")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def storage_ceiling(
    storages: list[str], counts: list[int], seconds: float, ops_per_trial: int, trial_seconds: float
) -> None:
    import multiprocessing

    from hpexp.errors import ServiceError

    print(
        f"\n2. Storage ceiling: {', '.join(map(str, counts))} simulated workers, {seconds:.0f} s "
        f"each, released together; per trial: ask, suggest, {REPORTS} reports, tell"
    )
    ctx = multiprocessing.get_context("forkserver")
    preload = ["optuna", "optuna.storages.journal", "sqlalchemy", "psycopg2", "grpc"]
    ctx.set_forkserver_preload(["__main__", *preload])
    head = (
        f"  {'storage':<12}{'workers':>7}{'trials/s':>10}{'ops/s':>8}{'vs ' + str(counts[0]):>7}"
        + "".join(f"{op + ' p50/p95 ms':>20}" for op in OPS)
        + "  ready s  errors"
    )
    print(f"  ({machine_now()})")
    print(head)
    best: dict[str, float] = {}
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hpexp-scaling-") as tmp:
        where = Path(tmp)
        services, env = None, {}
        try:
            from hpexp import services as svc

            if not {"postgresql", "grpc"} & set(storages):
                raise ServiceError("not asked for")

            t0 = time.perf_counter()
            services = svc.up(
                where / "hpexp-services", pg_port=free_port(), mlflow_port=free_port()
            )
            env = {"PGPASSFILE": str(services.pgpass)}
            print(
                f"  (PostgreSQL {services.pg_version} and MLflow started in "
                f"{time.perf_counter() - t0:.0f} s)"
            )
            os.environ.update(env)
        except ServiceError as e:
            if {"postgresql", "grpc"} & set(storages):
                skipped.append(f"PostgreSQL and gRPC proxy rows skipped: {e}")
        try:
            configs: list[tuple[str, str, Any]] = [("journal", "", None)]
            if services is not None:
                configs += [
                    ("postgresql", services.storage_url, None),
                    ("grpc proxy", services.storage_url, grpc_proxy),
                ]
            configs = [c for c in configs if c[0].split()[0] in storages]
            for label, url, proxy in configs:
                base = None
                for n in counts:
                    with contextlib.ExitStack() as stack:
                        if label == "journal":
                            kind, target = "journal", str(where / f"journal-{n}.log")
                        elif proxy is None:
                            kind, target = "postgresql", url
                        else:
                            kind = "grpc"
                            try:
                                target = stack.enter_context(proxy(url, where, env))
                            except (RuntimeError, ImportError) as e:
                                skipped.append(f"grpc proxy, {n} workers skipped: {e}")
                                continue
                        r = measure_storage(ctx, kind, target, n, seconds, env)
                    base = base or r["ops_s"]
                    best[label] = max(best.get(label, 0.0), r["ops_s"])
                    pct = "".join(f"{p[0]:>11.1f} /{p[1]:>6.1f}" for p in r["pct"].values())
                    print(
                        f"  {label:<12}{n:>7}{r['trials_s']:>10.1f}{r['ops_s']:>8.0f}"
                        f"{r['ops_s'] / base:>6.2f}x{pct}{r['setup']:>9.1f}  {r['errors']}"
                        + (f" ({r['first']})" if r["first"] else "")
                    )
                    if r["failed"]:
                        print(
                            f"{'':<19}{len(r['failed'])} of {n} workers could not open the "
                            f"study, the others ran: {r['failed'][0]}"
                        )
        finally:
            if services is not None:
                svc.down(services.root, delete_data=True)
    for line in skipped:
        print(f"  {line}")
    print(
        f"  ops/s: every call that ended inside the window (ask, suggest, report, tell), all "
        f"workers together; 'vs {counts[0]}': ops/s against the first row's (flat or "
        "falling: the storage is saturated)"
    )
    print(
        f"  note: {max(counts)} processes on {os.cpu_count()} cores: these figures measure each "
        "storage under contention on this machine (the workers, PostgreSQL and the proxy "
        "share its cores), not what a storage server serves to workers on other hosts."
    )
    busy = ops_per_trial / trial_seconds
    print(
        f"  a 1,000-worker study: each worker needs O / T = {ops_per_trial} ops per trial / "
        f"{trial_seconds:.0f} s per trial = {busy:.2f} ops/s, so a storage that saturates at S "
        "ops/s keeps about S x T / O workers busy (O, T assumed: --ops-per-trial, "
        "--trial-seconds; hpexp's own reads, e.g. counting the budget, come on top):"
    )
    for label, s in best.items():
        keeps = s / busy
        print(
            f"    {label:<12} S = {s:6.0f} ops/s -> about {keeps:7,.0f} workers "
            f"({'enough' if keeps >= 1000 else 'short of'} 1,000)"
            + ("; on one host only (a file lock)" if label == "journal" else "")
        )


# -- 3. under load and faults ---------------------------------------------------------------------


def fault_study(n_trials: int) -> str:
    """A study whose trials last about a second (iris, 1,500-3,000 iterations), no pruning."""
    return f"""\
name: faults
dataset: {{name: iris}}
fixed: {{optimizer: adam, eval_every: 50}}
search:
  learning_rate: {{float: [0.005, 0.1], log: true}}
  iterations:    {{int: [1500, 3000]}}
  hidden_layers: {{int: [1, 2]}}
  hidden_units:  {{int: [16, 64], per_layer: true}}
  activation:    {{choice: [relu, tanh]}}
pruner: {{name: none}}
budget: {{n_trials: {n_trials}}}
"""


def wait_until(condition: Any, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"waited {limit:.0f} s for {what}")
        time.sleep(0.1)


def faults(n_trials: int, workers: int = 4, kills: int = 2) -> None:
    from mlflow.tracking import MlflowClient
    from optuna.trial import TrialState

    from hpexp.search.states import counts_against_budget, trial_status

    print(
        f"\n3. Under load and faults: {workers} workers, {n_trials} trials of ~1 s, "
        f"{kills} workers killed (kill -9) mid-trial"
    )
    with tempfile.TemporaryDirectory(prefix="hpexp-scaling-") as tmp:
        where = Path(tmp)
        print(f"  ({machine_now()})")
        mlflow_store(where)
        (where / "faults.yaml").write_text(fault_study(n_trials))
        start = time.perf_counter()
        proc = start_hpexp(
            "run", "faults.yaml", "--workers", str(workers), "--no-progress", cwd=where
        )

        def running_by(pids: list[int]) -> list[int]:
            owners = [
                str(t.user_attrs.get("worker", ""))
                for t in journal_trials(where, "faults")
                if t.state == TrialState.RUNNING
            ]
            return [p for p in pids if any(o.endswith(f":{p}") for o in owners)]

        victims: list[int] = []
        try:
            wait_until(lambda: len(pids_in(where, b"hpexp.workers")) == workers, 120, "workers")
            wait_until(
                lambda: len(running_by(pids_in(where, b"hpexp.workers"))) >= kills,
                120,
                f"{kills} running trials",
            )
            victims = running_by(pids_in(where, b"hpexp.workers"))[:kills]
            for pid in victims:
                os.kill(pid, signal.SIGKILL)
        except RuntimeError as e:
            print(f"  could not kill workers mid-trial: {e}")
        out, err = finish(proc, where)
        wall = time.perf_counter() - start
        wait_for_writers(where)
        trials = journal_trials(where, "faults")
        counted = sum(counts_against_budget(t) for t in trials)
        interrupted = sum(trial_status(t) == "interrupted" for t in trials)
        client = MlflowClient(f"sqlite:///{where / 'mlflow.db'}")
        exp = client.get_experiment_by_name("faults")
        runs = []
        if exp is not None:
            token = None
            while True:
                page = client.search_runs(
                    [exp.experiment_id],
                    "tags.`hpexp.trial` != ''",
                    max_results=1000,
                    page_token=token,
                )
                runs += list(page)
                token = page.token
                if not token:
                    break
        per_trial = Counter(r.data.tags["hpexp.trial"] for r in runs)
        duplicates = sum(c - 1 for c in per_trial.values() if c > 1)
        lost = [
            t.number for t in trials if t.state.is_finished() and str(t.number) not in per_trial
        ]
        check, check_out, check_err = hpexp("check", "faults", cwd=where)
        wait_for_writers(where)
        print(
            f"  hpexp run exited with {proc.returncode} after {wall:.1f} s; killed pids "
            f"{victims or 'none'}; 'stopped (signal 9)' reported {err.count('stopped (signal 9)')}"
            f" times; {interrupted} trials interrupted and re-run"
        )
        if proc.returncode != 0:
            print("    " + "\n    ".join((err or out).strip().splitlines()[-8:]))
        rows = [
            (
                "finished trials (counted against the budget)",
                counted,
                f"exactly {n_trials}",
                counted == n_trials,
            ),
            ("duplicate MLflow runs", duplicates, "0", duplicates == 0),
            ("lost finished trials (no MLflow run)", len(lost), "0", not lost),
            ("hpexp check exit code", check, "0", check == 0),
        ]
        for what, value, target, ok in rows:
            print(f"  {what:<46}{value:>5}   target {target:<12}{'ok' if ok else 'MISSED'}")
        if lost:
            print(f"    trials without a run: {lost}")
        if check != 0:
            print("    " + "\n    ".join((check_out + check_err).strip().splitlines()[-8:]))


# -----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        help="run only this section (repeatable); default all",
    )
    parser.add_argument("--quickstart-trials", type=int, default=40)
    parser.add_argument("--mnist1d-trials", type=int, default=30)
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[8, 32, 64],
        help="simulated worker counts for the storage ceiling",
    )
    parser.add_argument(
        "--storages",
        nargs="+",
        default=["journal", "postgresql", "grpc"],
        choices=["journal", "postgresql", "grpc"],
        help="storages for the storage ceiling",
    )
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="measurement window per storage configuration"
    )
    parser.add_argument(
        "--ops-per-trial",
        type=int,
        default=50,
        help="assumed storage ops per real trial, for the 1,000-worker note",
    )
    parser.add_argument(
        "--trial-seconds",
        type=float,
        default=60.0,
        help="assumed seconds per real trial, for the 1,000-worker note",
    )
    parser.add_argument("--fault-trials", type=int, default=16)
    args = parser.parse_args()
    sections = args.only or list(SECTIONS)
    import hpexp.study  # noqa: F401  (Optuna and MLflow load here, outside the timings)

    start = time.perf_counter()
    if "throughput" in sections:
        throughput(
            [
                (ROOT / "studies/quickstart.yaml", args.quickstart_trials, 1.5),
                (ROOT / "studies/mnist1d.yaml", args.mnist1d_trials, 1.8),
            ]
        )
    if "storage" in sections:
        storage_ceiling(
            args.storages, args.workers, args.seconds, args.ops_per_trial, args.trial_seconds
        )
    if "faults" in sections:
        faults(args.fault_trials)
    print(f"\n(whole run: {time.perf_counter() - start:.0f} s)")
    if _STORE is not None:
        shutil.rmtree(_STORE.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
