"""Toxicity scorers (a registry). See ``base.py``."""
