"""Datasets (a registry): shipped benchmark files, local jsonl/csv files, Hugging Face datasets."""
