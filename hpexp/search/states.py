"""What happened to a trial, in words a user reads: complete, pruned, failed, interrupted, ...

Optuna knows five states. hpexp tells apart two kinds of FAIL that Optuna does not: a trial cut
short by a stopped or killed process (`interrupted`, re-queued and re-run with the same
parameters) and a proposal skipped because the study had already run that configuration
(`duplicate`). Neither counts against the study's budget; both are hidden from default tables.
"""

from __future__ import annotations

from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "COUNTED",
    "DUPLICATE",
    "INTERRUPTED",
    "STATUSES",
    "counts_against_budget",
    "retry_of",
    "trial_status",
]

INTERRUPTED = "interrupted"  # fail_reason of a trial whose process was stopped or killed
DUPLICATE = "duplicate"  # fail_reason prefix of a skipped repeat proposal: "duplicate of trial 4"

#: Every status `trial_status` returns, in the order tables list them.
STATUSES = ("complete", "pruned", "failed", "interrupted", "duplicate", "running", "waiting")
#: Statuses that count against the budget (`n_trials`).
COUNTED = ("complete", "pruned", "failed")


def trial_status(trial: FrozenTrial) -> str:
    """complete | pruned | failed | interrupted | duplicate | running | waiting.

    A FAIL without a reason is `interrupted`: its process died before it could say why (the
    trial was failed by Optuna's heartbeat check, from another worker)."""
    if trial.state == TrialState.FAIL:
        reason = str(trial.user_attrs.get("fail_reason", ""))
        if reason in (INTERRUPTED, ""):
            return "interrupted"
        if reason.startswith(DUPLICATE):
            return "duplicate"
        return "failed"
    return {
        TrialState.COMPLETE: "complete",
        TrialState.PRUNED: "pruned",
        TrialState.RUNNING: "running",
        TrialState.WAITING: "waiting",
    }[trial.state]


def counts_against_budget(trial: FrozenTrial) -> bool:
    """Complete, pruned, or failed for a reason of its own (diverged, an error)."""
    return trial.state.is_finished() and trial_status(trial) in COUNTED


def retry_of(trial: FrozenTrial) -> int | None:
    """The number of the interrupted trial that `trial` re-runs (re-queued by hpexp on this
    host, or by Optuna's RetryFailedTrialCallback after a lost heartbeat), else None."""
    number = trial.user_attrs.get("retry_of", trial.system_attrs.get("failed_trial"))
    return int(number) if number is not None else None
