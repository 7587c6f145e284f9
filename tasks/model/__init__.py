"""Features, targets, datasets, LightGBM training, scoring, reports, live predictions."""
