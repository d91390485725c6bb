"""`repair_journal`: a damaged end of an Optuna journal is cut off (and saved), damage in the
middle is refused, and in every case Optuna can read the journal afterwards."""

from __future__ import annotations

import errno
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

import hpexp.search.journal as journal
from hpexp.errors import HpexpError, StoreError
from hpexp.search.journal import repair_journal

STUDY = "journaled"
N_TRIALS = 3
SAVED = re.compile(r"optuna\.journal\.dropped-\d{8}T\d{6}Z(-\d+)?")


def storage(path: Path) -> optuna.storages.JournalStorage:
    """A fresh JournalStorage on `path`: replays the whole file, as a new process would."""
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -2.0, 2.0)
    act = trial.suggest_categorical("act", ["relu", "tanh"])
    trial.set_user_attr("note", f"trial {trial.number}: é")
    for step in range(3):
        trial.report(x * step, step)
    return x * x + (act == "tanh")


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a real journal: a study with N_TRIALS finished trials."""
    path = tmp_path_factory.mktemp("built") / "optuna.journal"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=STUDY, storage=storage(path), sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.optimize(objective, n_trials=N_TRIALS)
    return path.read_bytes()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "optuna.journal"


def trials(path: Path) -> list[tuple[Any, ...]]:
    """What Optuna reads back from the journal at `path`, trial by trial."""
    study = optuna.load_study(study_name=STUDY, storage=storage(path))
    return [
        (t.number, t.state, t.params, t.user_attrs, t.intermediate_values, t.values)
        for t in study.trials
    ]


def saved_files(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(f"{path.name}.dropped-"))


def last_record_start(data: bytes) -> int:
    return data.rstrip(b"\n").rindex(b"\n") + 1


def assert_repaired(path: Path, warning: str | None, kept: bytes, dropped: bytes) -> None:
    """The file holds exactly `kept`; `dropped` was saved; one warning line says so."""
    assert path.read_bytes() == kept
    [saved] = saved_files(path)
    assert SAVED.fullmatch(saved.name)
    assert saved.read_bytes() == dropped
    assert warning is not None and "\n" not in warning
    assert warning.startswith(f"{path}: dropped ")
    n_kept = kept.count(b"\n")
    assert f"({len(dropped)} bytes after line {n_kept}, kept in {saved})" in warning
    assert not Path(f"{path}.lock").exists()  # Optuna's lock was released
    assert repair_journal(path) is None  # nothing left to repair


def assert_writable(path: Path, n_before: int) -> None:
    """Optuna can add a trial, and a fresh reader sees it: the journal is sound again."""
    study = optuna.load_study(study_name=STUDY, storage=storage(path))
    trial = study.ask()
    trial.suggest_float("x", -2.0, 2.0)
    trial.set_user_attr("after", "repair")
    study.tell(trial, 0.25)
    reread = optuna.load_study(study_name=STUDY, storage=storage(path)).trials
    assert len(reread) == n_before + 1
    assert reread[-1].state == optuna.trial.TrialState.COMPLETE
    assert reread[-1].values == [0.25] and reread[-1].user_attrs == {"after": "repair"}
    assert repair_journal(path) is None


def test_clean_journal_is_left_alone(clean: bytes, path: Path) -> None:
    path.write_bytes(clean)
    before = path.stat().st_mtime_ns
    assert repair_journal(path) is None
    assert repair_journal(str(path)) is None
    assert path.read_bytes() == clean
    assert path.stat().st_mtime_ns == before
    assert saved_files(path) == [] and not Path(f"{path}.lock").exists()
    done = trials(path)
    assert len(done) == N_TRIALS
    assert all(t[1] == optuna.trial.TrialState.COMPLETE for t in done)


# Bytes of the last record kept: its first byte, a few, all but its last two, all but "\n".
@pytest.mark.parametrize("keep", [1, 17, 60, -2, -1])
def test_cut_last_record_is_dropped(clean: bytes, path: Path, tmp_path: Path, keep: int) -> None:
    start = last_record_start(clean)
    cut = start + keep if keep > 0 else len(clean) + keep
    assert start < cut < len(clean)
    path.write_bytes(clean[:cut])

    warning = repair_journal(path)

    assert_repaired(path, warning, kept=clean[:start], dropped=clean[start:cut])
    assert "dropped a damaged last record" in (warning or "")
    # Optuna reads exactly what a journal that simply ended before the cut record holds.
    reference = tmp_path / "reference" / "optuna.journal"
    reference.parent.mkdir()
    reference.write_bytes(clean[:start])
    assert trials(path) == trials(reference)
    # The cut record was the last trial's completion: earlier trials are intact, the last one
    # is left running with its parameters, user attributes and reports.
    original = tmp_path / "original.journal"
    original.write_bytes(clean)
    before, after = trials(original), trials(path)
    assert len(after) == N_TRIALS
    assert after[:-1] == before[:-1]
    assert after[-1][1] == optuna.trial.TrialState.RUNNING
    assert after[-1][2:5] == before[-1][2:5]
    assert_writable(path, N_TRIALS)


GARBAGE = {
    "text line": b"hello world\n",
    "binary junk": b"\x00\xff\xfe\x80binary junk",
    "binary line": b"\x89PNG\r\n",
    "invalid utf-8": b'{"op_code": 8, "note": "\xff\xfe"}\n',
    "json list": b"[1, 2, 3]\n",
    "json string": b'"op_code"\n',
    "no op_code": b'{"worker_id": "w", "trial_id": 0}\n',
    "op_code not an int": b'{"op_code": "4"}\n',
    "op_code a bool": b'{"op_code": true}\n',
    "empty line": b"\n",
    "deep nesting": b"[" * 100_000 + b"\n",
    "several lines": b'not json\n[1]\n\x00\x01\x02\n\n{"op_code": 1, "worker_id": "w"',
}


@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_after_last_record_is_dropped(clean: bytes, path: Path, garbage: bytes) -> None:
    path.write_bytes(clean + garbage)
    n_bad = garbage.count(b"\n") + (not garbage.endswith(b"\n"))

    warning = repair_journal(path)

    assert_repaired(path, warning, kept=clean, dropped=garbage)
    what = "a damaged last record" if n_bad == 1 else f"{n_bad} damaged lines"
    assert f"dropped {what} (" in (warning or "")
    done = trials(path)
    assert [t[1] for t in done] == [optuna.trial.TrialState.COMPLETE] * N_TRIALS
    assert_writable(path, N_TRIALS)


def test_warning_format(
    clean: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: Path
) -> None:
    """The path as given (here relative), the saved file next to it; a second save in the same
    second gets its own name."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(journal, "_utc_stamp", lambda: "20261129T120000Z")
    n_lines = clean.count(b"\n")
    path.write_bytes(clean + b"x" * 83)
    assert repair_journal("optuna.journal") == (
        f"optuna.journal: dropped a damaged last record (83 bytes after line {n_lines}, "
        "kept in optuna.journal.dropped-20261129T120000Z); any trial it left unfinished will be "
        "re-run"
    )
    path.write_bytes(clean + b"y\nz")
    warning = repair_journal(Path("optuna.journal"))
    assert warning is not None and "2 damaged lines (3 bytes" in warning
    assert "kept in optuna.journal.dropped-20261129T120000Z-2)" in warning
    assert (tmp_path / "optuna.journal.dropped-20261129T120000Z").read_bytes() == b"x" * 83
    assert (tmp_path / "optuna.journal.dropped-20261129T120000Z-2").read_bytes() == b"y\nz"
    assert path.read_bytes() == clean


def replace_line(data: bytes, number: int, new: bytes) -> bytes:
    lines = data.splitlines(keepends=True)
    lines[number - 1] = new
    return b"".join(lines)


def merge_with_next(data: bytes, number: int) -> bytes:
    """Line `number` cut in the middle and the next record written onto it: the original bug."""
    lines = data.splitlines(keepends=True)
    lines[number - 1] = lines[number - 1][:30]
    return b"".join(lines)


def bad_utf8(data: bytes, number: int) -> bytes:
    lines = data.splitlines(keepends=True)
    lines[number - 1] = lines[number - 1].replace(b'"worker_id":"', b'"worker_id":"\xff', 1)
    return b"".join(lines)


MIDDLE = {
    "text line": (lambda d: replace_line(d, 5, b"garbage\n"), 5, "not JSON"),
    "json list": (lambda d: replace_line(d, 7, b"[1, 2]\n"), 7, "not a JSON record"),
    "no op_code": (lambda d: replace_line(d, 3, b'{"worker_id": "w"}\n'), 3, "not a JSON record"),
    "empty line": (lambda d: replace_line(d, 4, b"\n"), 4, "not JSON"),
    "first line": (lambda d: replace_line(d, 1, b"\x00\x00\x00\n"), 1, "not JSON"),
    "invalid utf-8": (lambda d: bad_utf8(d, 6), 6, "not UTF-8"),
    "record written onto a cut one": (lambda d: merge_with_next(d, 8), 8, "not JSON"),
    "and a cut end": (lambda d: replace_line(d, 2, b"garbage\n")[:-5], 2, "not JSON"),
    "second to last line": (lambda d: replace_line(d, d.count(b"\n") - 1, b"x\n"), 0, "not JSON"),
}


@pytest.mark.parametrize("damage, line, reason", MIDDLE.values(), ids=MIDDLE.keys())
def test_damage_in_the_middle_is_refused(
    clean: bytes, path: Path, damage: Any, line: int, reason: str
) -> None:
    line = line or clean.count(b"\n") - 1
    data = damage(clean)
    path.write_bytes(data)

    with pytest.raises(StoreError) as info:
        repair_journal(path)

    message = str(info.value)
    assert isinstance(info.value, HpexpError) and "\n" not in message
    assert message == (
        f"{path}: line {line} is damaged ({reason}); restore the file from a backup, or move it "
        "away to start the study over"
    )
    assert path.read_bytes() == data
    assert saved_files(path) == [] and not Path(f"{path}.lock").exists()


def test_what_optuna_does_to_a_cut_journal_is_caught(clean: bytes, path: Path) -> None:
    """Without the repair Optuna appends onto the cut record and the journal stops loading;
    `repair_journal` then names the merged line instead of guessing."""
    path.write_bytes(clean[:-10])
    assert len(trials(path)) == N_TRIALS  # Optuna still reads a journal with a cut end...
    record = json.loads(clean.splitlines()[3])
    backend = JournalFileBackend(str(path))
    backend.append_logs([record])  # ...but appends onto the cut line,
    backend.append_logs([record])
    with pytest.raises(json.JSONDecodeError):  # and then no longer reads it
        trials(path)
    damaged = path.read_bytes()
    n_lines = clean.count(b"\n")
    with pytest.raises(StoreError, match=rf"line {n_lines} is damaged \(not JSON\); restore"):
        repair_journal(path)
    assert path.read_bytes() == damaged and saved_files(path) == []


def test_missing_or_empty_file(path: Path) -> None:
    assert repair_journal(path) is None
    assert not path.exists() and list(path.parent.iterdir()) == []
    path.touch()
    assert repair_journal(path) is None
    assert path.read_bytes() == b"" and list(path.parent.iterdir()) == [path]


def test_cut_first_record_leaves_an_empty_journal(path: Path) -> None:
    path.write_bytes(b'{"op_code":0,"worker_id":"a')
    warning = repair_journal(path)
    assert warning is not None and "(27 bytes at the start of the file, kept in" in warning
    assert path.read_bytes() == b""
    [saved] = saved_files(path)
    assert saved.read_bytes() == b'{"op_code":0,"worker_id":"a'
    optuna.create_study(study_name=STUDY, storage=storage(path)).optimize(objective, n_trials=1)
    assert len(trials(path)) == 1


@pytest.mark.parametrize(
    "content",
    [b"name: tiny\nsearch: {}\n", b"SQLite format 3\x00\x10\x00", b'{"a": 1}\n', b"\n"],
    ids=["yaml", "sqlite", "json file", "blank line"],
)
def test_a_file_that_is_no_journal_is_refused(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    with pytest.raises(StoreError, match=r"not an Optuna journal \(line 1 is "):
        repair_journal(path)
    assert path.read_bytes() == content and saved_files(path) == []


def test_waits_for_optunas_lock(clean: bytes, path: Path) -> None:
    """A writer holding the journal's lock (the one JournalFileBackend takes) is never cut off."""
    path.write_bytes(clean + b'{"op_code":6,"wor')
    held = JournalFileSymlinkLock(str(path))
    assert held.acquire()
    result: list[str | None] = []
    worker = threading.Thread(target=lambda: result.append(repair_journal(path)))
    try:
        worker.start()
        time.sleep(0.3)
        assert worker.is_alive() and path.read_bytes() == clean + b'{"op_code":6,"wor'
        with open(path, "ab") as f:  # the writer finishes its record
            f.write(b'ker_id":"w","trial_id":2,"state":2,"values":null}\n')
    finally:
        held.release()
        worker.join(10)
    assert result == [None]  # the completed record is sound: nothing to drop
    assert path.read_bytes().startswith(clean) and saved_files(path) == []


def test_read_only_directory_is_only_checked(
    clean: bytes, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: JournalFileSymlinkLock) -> bool:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(JournalFileSymlinkLock, "acquire", refuse)
    path.write_bytes(clean)
    assert repair_journal(path) is None
    path.write_bytes(clean + b"junk")
    with pytest.raises(StoreError, match=r"a damaged last record \(4 bytes after line .*lock"):
        repair_journal(path)
    assert path.read_bytes() == clean + b"junk" and saved_files(path) == []


@pytest.mark.slow
def test_ten_megabytes_in_well_under_a_second(clean: bytes, path: Path) -> None:
    lines = clean.splitlines(keepends=True)
    body = b"".join(lines[1:])
    data = lines[0] + body * (10_000_000 // len(body) + 1)
    path.write_bytes(data + b'{"op_code":7,"worker_id":"w","trial_id":1,"st')
    timings = []  # CPU seconds, not wall time: a busy test machine does not fail the test
    for expected in (True, False):  # the repair, then a check of the sound file
        start = time.process_time()
        warning = repair_journal(path)
        timings.append(time.process_time() - start)
        assert (warning is not None) is expected
        assert path.read_bytes() == data
    assert min(timings) < 1.0, f"{timings} s for {len(data) / 1e6:.1f} MB"


def test_full_disk_changes_nothing(
    clean: bytes, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the dropped bytes cannot be saved, the journal is not cut and no partial copy stays."""

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    path.write_bytes(clean + b'{"op_code":7,')
    monkeypatch.setattr(journal.os, "fsync", no_space)
    with pytest.raises(StoreError, match=r"cannot be dropped \(No space left on device\); free"):
        repair_journal(path)
    assert path.read_bytes() == clean + b'{"op_code":7,' and saved_files(path) == []
    assert not Path(f"{path}.lock").exists()
