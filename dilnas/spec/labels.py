"""Label conventions shared by the data sets, the losses and the metrics."""

IGNORE_INDEX = 255  # a label pixel that no loss or metric counts (void classes, padding, rotation fill)
