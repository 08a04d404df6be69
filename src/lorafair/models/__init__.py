"""Model sources (a registry): ``embedded:``, ``hf:``, ``tiny:``. See ``sources.py``."""
