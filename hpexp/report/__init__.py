"""Reports of finished studies: figures (and, later, tables and comparisons)."""

from hpexp.report.plots import save_study_plots

__all__ = ["save_study_plots"]
