"""Adapting the base model: the variant ladder (``variants.py``, ``peft_methods.py``) and training (``train.py``)."""
