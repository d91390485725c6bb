"""The study's parent-run artifacts: trials table, plots and the best model (pyfunc + .npz)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hpexp.data import Dataset
from hpexp.nn import save_model

if TYPE_CHECKING:
    from hpexp.search.result import StudyResult

__all__ = ["input_example", "study_artifacts"]


def input_example(ds: Dataset, rows: int = 5) -> pd.DataFrame:
    """A few test (or validation) samples as raw, row-per-sample feature values."""
    X = ds.X_test if ds.X_test.shape[1] else ds.X_val
    raw = X[:, :rows] * ds.x_std + ds.x_mean  # undo the standardization: (n_x, rows)
    return pd.DataFrame(raw.T, columns=list(ds.feature_names))


def study_artifacts(
    result: StudyResult, ds: Dataset, out: Path
) -> tuple[list[tuple[Path, str | None]], dict[str, float], dict[str, str]]:
    """Write the artifacts under `out`; return [(path, artifact folder)], metrics and tags for
    the parent run."""
    from hpexp.report.plots import save_study_plots

    artifacts: list[tuple[Path, str | None]] = []
    trials_csv = out / "trials.csv"
    result.trials.to_csv(trials_csv, index=False)
    artifacts.append((trials_csv, None))
    plots = save_study_plots(result.study, out / "plots", target_name=result.spec.metric)
    if plots:
        artifacts.append((out / "plots", "plots"))
    states = result.trials["state"].value_counts() if len(result.trials) else pd.Series()
    metrics = {
        f"trials_{s.lower()}": float(states.get(s, 0)) for s in ("COMPLETE", "PRUNED", "FAIL")
    }
    tags: dict[str, str] = {}
    if result._has_best():
        best = result.best_trial
        model = result.best_model()
        save_model(model, out / "best_model" / "model")
        artifacts.append((out / "best_model", "best_model"))
        from hpexp.tracking.pyfunc import save_pyfunc_model

        save_pyfunc_model(model, out / "model", input_example(ds))
        artifacts.append((out / "model", "model"))
        metrics |= {
            f"best_{k}": float(v)
            for k, v in result.best_metrics.items()
            if np.isfinite(v) and (k.startswith(("val_", "test_")) or k == "n_params")
        }
        tags = {"hpexp.best_trial": str(best.number), "hpexp.best_run_id": result.best_run_id}
    return artifacts, metrics, tags
