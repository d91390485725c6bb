"""Statistics of a metric over a trial's repeats (one value per seed).

With S ≥ 2 values x_1..x_S: the mean x̄, the sample standard deviation s (ddof = 1), the
standard error s/√S and the 95% confidence interval of the mean, x̄ ± t(0.975, S−1) · s/√S,
with Student's t quantile from scipy (a dependency of scikit-learn, always installed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["SUFFIXES", "summary", "t_quantile"]

SUFFIXES = ("_std", "_sem", "_ci95_low", "_ci95_high")  # what `summary` adds to a name


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t distribution with `df` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(p, df))


def summary(name: str, values: Sequence[float]) -> dict[str, float]:
    """{name: x̄, name_std: s, name_sem: s/√S, name_ci95_low / _ci95_high: x̄ ∓ t·s/√S} of
    S ≥ 2 values; NaN values make every entry NaN."""
    S = len(values)
    if S < 2:
        raise ValueError(f"a summary over repeats needs at least 2 values, got {S}")
    mean = math.fsum(values) / S
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (S - 1))
    sem = std / math.sqrt(S)
    half = t_quantile(0.975, S - 1) * sem
    return {
        name: mean,
        f"{name}_std": std,
        f"{name}_sem": sem,
        f"{name}_ci95_low": mean - half,
        f"{name}_ci95_high": mean + half,
    }
