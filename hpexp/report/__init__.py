"""Reports of a study: tables of its trials and comparisons (`tables`), which hyperparameters
matter (`effects`), the text summary and trial list (`summary`), PNG figures (`plots`),
interactive figures (`figures`), re-evaluation statistics (`reevaluation`) and the study report,
report.html and report.md (`document`).

Nothing is imported here: the figures need matplotlib or plotly, which a table does not."""
