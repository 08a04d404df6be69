"""The classification study's tabular datasets: Adult, COMPAS and German credit read from the packages
that ship them (``loaders``), rendered as yes/no prompts (``render``), and registered as training
datasets (``datasets``)."""
