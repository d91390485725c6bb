"""Reports of finished studies: tables and comparisons (`tables`), figures (`plots`).

Nothing is imported here: the figures need matplotlib, which a table does not."""
