"""Reports of finished studies: tables and comparisons (`tables`), importances (`effects`), PNG
figures (`plots`), interactive figures (`figures`) and the study report, report.html and
report.md (`document`).

Nothing is imported here: the figures need matplotlib or plotly, which a table does not."""
