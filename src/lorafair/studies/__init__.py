"""Studies: families of measurements applied to every variant. See ``base.py`` for the contract."""
