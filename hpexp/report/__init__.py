"""Reports of a study: tables of its trials and comparisons (`tables`), which hyperparameters
matter (`effects`), the text summary and trial list (`summary`), figures (`plots`).

Nothing is imported here: the figures need matplotlib, which a table does not."""
