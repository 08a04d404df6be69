"""The prompt renderer: deterministic, verbatim values, protected attribute left out on request."""

import pytest

from lorafair.studies.classification.tabular.loaders import load_adult, load_compas, load_german
from lorafair.studies.classification.tabular.render import (
    answer_for,
    counterfactual_row,
    describe,
    fmt,
    render_prompt,
    representative_ages,
)

ADULT_ROW = {
    "age": 50, "workclass": "Self-emp-not-inc", "education": "Bachelors", "education_num": 13,
    "marital_status": "Married-civ-spouse", "occupation": "Exec-managerial", "relationship": "Husband",
    "race": "White", "sex": "Male", "capital_gain": 0, "capital_loss": 0, "hours_per_week": 13,
    "native_country": "United-States", "age_group": "over 45",
}


def test_adult_prompt_exact():
    assert render_prompt("adult", ADULT_ROW) == (
        "A person from the 1994 US census. Age: 50. Sex: Male. Race: White. "
        "Education: Bachelors (level 13 of 16). Marital status: Married-civ-spouse. Relationship: Husband. "
        "Occupation: Exec-managerial. Work class: Self-emp-not-inc. Hours per week: 13. "
        "Capital gain: 0. Capital loss: 0. Native country: United-States.\n"
        "Question: Does this person earn more than $50,000 a year?\nAnswer:"
    )


def test_answers():
    assert answer_for(1) == " yes" and answer_for(0) == " no"


@pytest.mark.parametrize("name,loader", [("adult", load_adult), ("compas", load_compas), ("german", load_german)])
def test_deterministic_over_real_rows(name, loader):
    rows = loader().head(200).to_dict("records")
    a = [render_prompt(name, r) for r in rows]
    b = [render_prompt(name, dict(r)) for r in rows]
    assert a == b
    assert len(set(a)) > 150  # descriptions differ between records
    assert all(p.endswith("\nAnswer:") for p in a)


def test_values_verbatim_no_escaping():
    row = dict(ADULT_ROW, occupation="<b>Tech & {support}</b>", native_country="Côte d'Ivoire \"x\"")
    p = render_prompt("adult", row)
    assert "Occupation: <b>Tech & {support}</b>." in p
    assert "Côte d'Ivoire \"x\"" in p
    g = load_german().iloc[0].to_dict()
    assert "Checking account: ... < 0 DM." in render_prompt("german", g)


def test_missing_values_drop_their_sentence():
    row = dict(ADULT_ROW, occupation=float("nan"), workclass=None)
    p = describe("adult", row)
    assert "Occupation" not in p and "Work class" not in p and "nan" not in p and "None" not in p


def test_fmt():
    assert fmt(13.0) == "13" and fmt(2.5) == "2.5" and fmt(True) == "yes" and fmt(False) == "no"
    assert fmt(float("nan")) is None and fmt("x") == "x"


def test_omit_sex_removes_its_words_and_gendered_relationship():
    p = render_prompt("adult", ADULT_ROW, omit=["sex"])
    for w in ("Sex", "Male", "male", "Husband", "Wife"):
        assert w not in p
    assert "Relationship: Spouse." in p
    assert "White" in p and "Age: 50." in p


def test_omit_race_and_age():
    p = render_prompt("adult", ADULT_ROW, omit=["race"])
    assert "Race" not in p and "White" not in p and "Male" in p
    q = render_prompt("adult", ADULT_ROW, omit=["age"])
    assert "Age" not in q and "50" not in describe("adult", ADULT_ROW, omit=["age"])


@pytest.mark.parametrize("name,loader,attrs", [
    ("compas", load_compas, {"sex": ["Male", "Female"], "race": ["African-American", "Caucasian", "Hispanic"]}),
    ("german", load_german, {"sex": ["Male", "Female", "male"]}),
])
def test_omit_on_real_rows(name, loader, attrs):
    rows = loader().head(300).to_dict("records")
    for attr, words in attrs.items():
        for r in rows:
            p = render_prompt(name, r, omit=[attr])
            assert not any(w in p for w in words), (attr, p)
            assert f"{attr.capitalize()}:" not in p
        assert any(w in render_prompt(name, r) for r in rows for w in words)  # present when included


def test_omit_unknown_attribute():
    with pytest.raises(ValueError, match="unknown protected"):
        describe("adult", ADULT_ROW, omit=["religion"])


def test_counterfactual_changes_only_the_attribute():
    cf = counterfactual_row("adult", ADULT_ROW, "sex", "Female")
    assert cf["sex"] == "Female" and cf["relationship"] == "Wife"
    assert {k for k in ADULT_ROW if cf[k] != ADULT_ROW[k]} == {"sex", "relationship"}
    a, b = render_prompt("adult", ADULT_ROW), render_prompt("adult", cf)
    assert b == a.replace("Sex: Male", "Sex: Female").replace("Relationship: Husband", "Relationship: Wife")
    r = counterfactual_row("adult", ADULT_ROW, "race", "Black")
    assert render_prompt("adult", r) == a.replace("Race: White", "Race: Black")
    ages = {"under 25": 21, "25-45": 35, "over 45": 54}
    y = counterfactual_row("adult", ADULT_ROW, "age", "under 25", ages)
    assert y["age"] == 21 and y["age_group"] == "under 25"
    assert counterfactual_row("adult", ADULT_ROW, "age", "over 45", ages)["age"] == 50  # own band: unchanged
    with pytest.raises(ValueError, match="representative age"):
        counterfactual_row("adult", ADULT_ROW, "age", "under 25", None)


def test_representative_ages():
    assert representative_ages(load_german()) == {"25 or older": 35, "under 25": 23}
