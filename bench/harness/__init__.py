"""Pieces of bench/compare.py: models, timing, systems, scenarios, reports."""
