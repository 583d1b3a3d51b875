"""Offline evaluation: splits, metrics, baselines, confidence intervals."""
