"""The validated configuration (``RunConfig``), recipes and ``--set`` overrides."""
