"""Render a tabular record as a short description and a yes/no question.

The description is one line of short ``Field: value.`` sentences after a one-sentence context (the
"list" serialisation of TabLLM, Hegselmann et al. 2023, which did as well as prose; it is half as many
tokens as full sentences, which matters on a CPU).

``render_prompt(dataset, row, omit=...)`` returns::

    <one sentence per field>
    Question: <the dataset's question>
    Answer:

and the answer is the next token(s): :data:`YES` (label 1, the dataset's positive class) or :data:`NO`.

Rules:
- deterministic: the same row gives the same text (no sampling, fixed field order);
- values are inserted verbatim (``State-gov``, ``... < 0 DM``): no escaping, no re-casing, no
  translation; only missing values (NaN/None) drop their sentence, integral floats print as integers
  and booleans print as yes/no;
- ``omit`` lists protected attributes (``sex``, ``race``, ``age``) whose sentences are left out. When
  ``sex`` is omitted, Adult's relationship values ``Husband``/``Wife`` (gendered words that state the
  sex) are rendered ``Spouse``; no other proxy is removed (e.g. German's personal status keeps its
  sex-specific categories, as shipped).

:func:`counterfactual_row` changes only the protected attribute of a row (for the counterfactual flip
rate): sex -> the other value (Adult also swaps ``Husband``/``Wife`` so the record stays coherent),
race -> another race, age -> a representative age of another age band (the median age of that band in
the training split, :func:`representative_ages`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence

from lorafair.studies.classification.tabular.loaders import INFO

if TYPE_CHECKING:
    import pandas as pd

YES = " yes"
NO = " no"
ANSWERS = (NO, YES)  # index = label


def answer_for(label: int) -> str:
    """The completion of label 1 (positive class) is " yes", of label 0 " no"."""
    return YES if int(label) == 1 else NO


def fmt(value: Any) -> Optional[str]:
    """Text of one value, verbatim; None when missing."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "yes" if bool(value) else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalar
        return fmt(value.item())
    return str(value)


# A clause: (protected attribute it reveals or None, function(row, S, omit) -> sentence or None)
Clause = tuple[Optional[str], Callable[[Mapping[str, Any], str, frozenset], Optional[str]]]


def _field(template: str, *cols: str) -> Callable[[Mapping[str, Any], str, frozenset], Optional[str]]:
    """Sentence from ``template`` with ``{S}`` (subject) and ``{0}``, ``{1}`` … (the columns' values);
    None when any value is missing."""

    def make(row: Mapping[str, Any], subject: str, omit: frozenset) -> Optional[str]:
        vals = [fmt(row.get(c)) for c in cols]
        if any(v is None for v in vals):
            return None
        # str.format would interpret braces inside values: substitute literally instead.
        out = template.replace("{S}", subject)
        for i, v in enumerate(vals):
            out = out.replace("{%d}" % i, v)
        return out

    return make


def _adult_relationship(row: Mapping[str, Any], subject: str, omit: frozenset) -> Optional[str]:
    rel = fmt(row.get("relationship"))
    if rel is None:
        return None
    if "sex" in omit and rel in ("Husband", "Wife"):
        rel = "Spouse"
    return f"Relationship: {rel}."


def _compas_charge(row: Mapping[str, Any], subject: str, omit: frozenset) -> Optional[str]:
    degree = fmt(row.get("c_charge_degree"))
    if degree is None:
        return None
    word = {"F": "felony", "M": "misdemeanor"}.get(degree, "offense")
    desc = fmt(row.get("c_charge_desc"))
    return f"Current charge: {word} ({degree})" + (f", {desc}." if desc is not None else ".")


CLAUSES: dict[str, list[Clause]] = {
    "adult": [
        (None, lambda row, S, omit: "A person from the 1994 US census."),
        ("age", _field("Age: {0}.", "age")),
        ("sex", _field("Sex: {0}.", "sex")),
        ("race", _field("Race: {0}.", "race")),
        (None, _field("Education: {0} (level {1} of 16).", "education", "education_num")),
        (None, _field("Marital status: {0}.", "marital_status")),
        (None, _adult_relationship),
        (None, _field("Occupation: {0}.", "occupation")),
        (None, _field("Work class: {0}.", "workclass")),
        (None, _field("Hours per week: {0}.", "hours_per_week")),
        (None, _field("Capital gain: {0}. Capital loss: {1}.", "capital_gain", "capital_loss")),
        (None, _field("Native country: {0}.", "native_country")),
    ],
    "compas": [
        (None, lambda row, S, omit: "A defendant in Broward County, Florida."),
        ("age", _field("Age: {0}.", "age")),
        ("sex", _field("Sex: {0}.", "sex")),
        ("race", _field("Race: {0}.", "race")),
        (None, _compas_charge),
        (None, _field("Prior offenses: {0}.", "priors_count")),
        (None, _field(
            "Juvenile felonies: {0}. Juvenile misdemeanors: {1}. Other juvenile offenses: {2}.",
            "juv_fel_count", "juv_misd_count", "juv_other_count",
        )),
    ],
    "german": [
        (None, lambda row, S, omit: "A credit applicant in Germany."),
        ("age", _field("Age: {0}.", "age")),
        ("sex", _field("Sex: {0}.", "sex")),
        (None, _field("Personal status: {0}.", "personal_status")),
        (None, _field("Credit: {0} DM over {1} months for {2}.", "credit_amount", "duration", "purpose")),
        (None, _field("Checking account: {0}.", "status")),
        (None, _field("Savings: {0}.", "savings")),
        (None, _field("Credit history: {0}.", "credit_history")),
        (None, _field("Employed for: {0}.", "present_employment")),
        (None, _field("Job: {0}.", "job")),
        (None, _field("Housing: {0}. Property: {1}.", "housing", "property")),
        (None, _field("Other debtors: {0}. Other installment plans: {1}.", "other_debtors", "installment_plans")),
        (None, _field("Installment rate (1-4): {0}. Existing credits at this bank: {1}.", "installment_rate", "number_of_existing_credits")),
        (None, _field("Foreign worker: {0}.", "foreign_worker")),
    ],
}


def describe(dataset: str, row: Mapping[str, Any], omit: Sequence[str] = ()) -> str:
    """The description of ``row``: one sentence per field, in a fixed order, leaving out the
    sentences of the protected attributes in ``omit`` and of missing values."""
    info = INFO[dataset]
    omit_set = frozenset(omit)
    bad = omit_set - {"sex", "race", "age"}
    if bad:
        raise ValueError(f"unknown protected attributes {sorted(bad)}")
    sentences = []
    for tag, make in CLAUSES[dataset]:
        if tag is not None and tag in omit_set:
            continue
        s = make(row, info.subject, omit_set)
        if s is not None:
            sentences.append(s)
    return " ".join(sentences)


def render_prompt(dataset: str, row: Mapping[str, Any], omit: Sequence[str] = ()) -> str:
    """Description, the dataset's question and ``Answer:``; the next token(s) are " yes"/" no"."""
    return f"{describe(dataset, row, omit)}\nQuestion: {INFO[dataset].question}\nAnswer:"


def representative_ages(df: pd.DataFrame) -> dict[str, int]:
    """Median age (rounded down to an integer) of each age band in the training split of ``df``."""
    train = df[df["split"] == "train"]
    return {band: int(train.loc[train["age_group"] == band, "age"].median()) for band in sorted(train["age_group"].unique())}


def counterfactual_row(
    dataset: str, row: Mapping[str, Any], protected: str, value: str, ages: Optional[Mapping[str, int]] = None
) -> dict[str, Any]:
    """A copy of ``row`` whose protected attribute is ``value`` and nothing else changes (except the
    coupled fields named in the module docstring). For ``age``, ``value`` is an age band and ``ages``
    maps each band to the age written in the prompt."""
    out = dict(row)
    if protected == "sex":
        out["sex"] = value
        if dataset == "adult" and row.get("sex") != value:
            out["relationship"] = {"Husband": "Wife", "Wife": "Husband"}.get(row.get("relationship"), row.get("relationship"))
    elif protected == "race":
        out["race"] = value
    elif protected == "age":
        if ages is None or value not in ages:
            raise ValueError(f"no representative age for age band {value!r}")
        out["age_group"] = value
        out["age"] = row["age"] if row.get("age_group") == value else ages[value]
    else:
        raise ValueError(f"unknown protected attribute {protected!r}")
    return out
