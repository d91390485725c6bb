"""Check, and where it is safe repair, an Optuna journal file before hpexp opens it.

hpexp's default Optuna storage is a journal file (`JournalStorage(JournalFileBackend(path))`):
one JSON object per line, each with an integer "op_code", each ending with "\\n". Optuna
replays the whole file on every open and appends new records at its end.

A crash or a full disk can leave a partial last line. Optuna still reads such a file, but its
next append lands on the same line, which turns it into a line that is not JSON in the middle
of the file, and from then on every read fails with a JSONDecodeError. `repair_journal` runs
before the journal is opened and tells the two kinds of damage apart:

* Damage at the end (a last record cut off, or one or more lines that are not journal records
  after the last good one): the file is cut right after the last good record and the dropped
  bytes are saved next to it as `<name>.dropped-<UTC time>`, so nothing is destroyed. Losing
  the last record of an interrupted process is harmless: hpexp re-runs a trial a dead process
  left unfinished. The caller gets one warning line.
* Damage followed by good records (damage in the middle): records after it may depend on the
  lost one, so nothing is changed and `StoreError` says which line to look at.

A file in which no line is a journal record is not taken for a journal (`StoreError`), except
for a single cut-off first record (`{...` without a line end), which is dropped as above.

The check and the cut happen while holding Optuna's own journal lock for the file (the lock
class and lock-file name `JournalFileBackend` uses by default), so a concurrent Optuna writer
is never cut off mid-write. Where that lock cannot be created (a read-only directory) the file
is only checked: a clean journal passes, a damaged one raises `StoreError`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from optuna.storages.journal import JournalFileSymlinkLock

from hpexp.errors import StoreError

__all__ = ["repair_journal"]

_FIX = "restore the file from a backup, or move it away to start the study over"


@dataclass(frozen=True)
class _Damage:
    """Damage at the end of a journal: everything from byte `keep` on is to be dropped."""

    keep: int  # bytes up to the end of the last good record
    last_good_line: int  # its line number (0: no good record)
    bad_lines: int  # damaged lines after it
    size: int  # bytes in the file

    @property
    def dropped(self) -> int:
        """How many bytes the repair drops."""
        return self.size - self.keep

    def describe(self, more: str = "") -> str:
        """What is damaged, e.g. `a damaged last record (83 bytes after line 2137<more>)`."""
        what = "a damaged last record" if self.bad_lines == 1 else f"{self.bad_lines} damaged lines"
        where = (
            f"after line {self.last_good_line}"
            if self.last_good_line
            else "at the start of the file"
        )
        return f"{what} ({self.dropped} bytes {where}{more})"


def repair_journal(path: str | os.PathLike[str]) -> str | None:
    """Drop a damaged end of the Optuna journal at `path` and say so; None if it is sound.

    Returns None for a missing, empty or sound file (left untouched), else one warning line
    naming the bytes dropped and the file they were saved to. Raises `StoreError` (file left
    untouched) when a damaged line is followed by good records, when no line is a journal
    record, or when a damaged file cannot be repaired (not writable).
    """
    shown = os.fspath(path)
    target = Path(shown).resolve()  # as hpexp's make_storage does: the same lock file
    if not target.is_file() or target.stat().st_size == 0:
        return None
    lock = JournalFileSymlinkLock(str(target))
    try:
        lock.acquire()
    except OSError as e:  # no lock can be made here (read-only directory): only check
        damage = _scan(target, shown)
        if damage is None:
            return None
        raise StoreError(
            f"{shown}: {damage.describe()} cannot be dropped: cannot create the lock file "
            f"{target}.lock ({e.strerror or e}); run again where the directory is writable"
        ) from None
    try:
        damage = _scan(target, shown)
        return None if damage is None else _drop_end(target, shown, damage)
    finally:
        lock.release()


def _problem(line: bytes) -> str | None:
    """Why `line` is not a complete journal record, or None if it is one."""
    if not line.endswith(b"\n"):
        return "cut off: no line end"
    try:
        record = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        return "not UTF-8"
    except (ValueError, RecursionError):
        return "not JSON"
    if not isinstance(record, dict) or type(record.get("op_code")) is not int:
        return "not a JSON record"
    return None


def _scan(target: Path, shown: str) -> _Damage | None:
    """Check every line of the journal; the damage at its end, None if there is none.

    Raises `StoreError` for a damaged line followed by a good record, and for a file that
    holds no journal record at all (other than a single cut-off first record).
    """
    keep = size = line_no = last_good = 0
    first_bad: tuple[int, str] | None = None
    cut_first_record = False  # the file is one line: the start of a record, cut off
    try:
        with open(target, "rb") as f:
            for line in f:
                line_no += 1
                size += len(line)
                reason = _problem(line)
                if reason is None:
                    if first_bad is not None:
                        bad_no, bad_reason = first_bad
                        raise StoreError(
                            f"{shown}: line {bad_no} is damaged ({bad_reason}); {_FIX}"
                        )
                    keep, last_good = size, line_no
                elif first_bad is None:
                    first_bad = (line_no, reason)
                if line_no == 1:
                    cut_first_record = line.startswith(b"{") and not line.endswith(b"\n")
    except OSError as e:
        raise StoreError(f"{shown}: cannot be read ({e.strerror or e})") from None
    if first_bad is None:
        return None
    if last_good == 0 and not cut_first_record:
        raise StoreError(
            f"{shown}: not an Optuna journal (line 1 is {first_bad[1]}, and no line is a journal "
            "record); point the storage at the study's journal file, or move this file away"
        )
    return _Damage(keep=keep, last_good_line=last_good, bad_lines=line_no - last_good, size=size)


def _utc_stamp() -> str:
    """The current UTC time as YYYYmmddTHHMMSSZ."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _save(target: Path, data: bytes) -> Path:
    """Write `data` to a new sibling `<name>.dropped-<UTC time>[-n]` of `target`; its path."""
    base = f"{target.name}.dropped-{_utc_stamp()}"
    n = 1
    while True:
        saved = target.with_name(base if n == 1 else f"{base}-{n}")
        created = False
        try:
            with open(saved, "xb") as f:  # never overwrite an earlier save
                created = True
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            return saved
        except FileExistsError:
            n += 1
        except OSError:  # a full disk, say: leave no partial copy behind
            if created:
                saved.unlink(missing_ok=True)
            raise


def _drop_end(target: Path, shown: str, damage: _Damage) -> str:
    """Save the damaged end of the journal to a sibling file, then cut it off; the warning."""
    try:
        with open(target, "r+b") as f:
            f.seek(damage.keep)
            data = f.read()
            saved = _save(target, data)  # saved (and synced) before anything is cut
            f.truncate(damage.keep)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise StoreError(
            f"{shown}: {damage.describe()} cannot be dropped ({e.strerror or e}); "
            "free disk space or make the file and its directory writable, then run again"
        ) from None
    saved_shown = (
        str(saved) if Path(shown).is_symlink() else os.path.join(os.path.dirname(shown), saved.name)
    )
    return (
        f"{shown}: dropped {damage.describe(f', kept in {saved_shown}')}; "
        "any trial it left unfinished will be re-run"
    )
