"""lorafair: did your low-rank fine-tune learn the shift that full fine-tuning learns?

See README.md and DESIGN.md. The package is organised by stage:
``config`` (validated schema, recipes), ``models`` (model sources), ``data``
(dataset sources), ``adapt`` (variant ladder and training), ``studies``
(measurements), ``scorers`` (toxicity classifiers), ``run`` (run directories,
resume), ``report`` (tables and plots).
"""

__version__ = "0.1.0"
