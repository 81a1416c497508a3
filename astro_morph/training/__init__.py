"""Training: labelled image sets, the paper's augmentation, the trainer and metrics."""
