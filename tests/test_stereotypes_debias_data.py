"""Debias fine-tuning data: counterfactual augmentation and anti-stereotypical sentences."""

import pytest

from lorafair.studies.stereotypes.datasets.antistereotype import build_antistereotype
from lorafair.studies.stereotypes.datasets.cda import build_cda
from lorafair.data.wordlists import swap_map, swap_terms
from lorafair.data.registry import DATASETS, DataContext, DataSpec, register_dataset
from lorafair.errors import UserError


def test_gender_swaps_keep_case_and_whole_words():
    m = swap_map("gender")
    assert m["he"] == "she" and m["she"] == "he" and m["actress"] == "actor" and m["her"] == "his"
    text, n = swap_terms("He met his Mother; THE KING heard her. Shepherd, theme.", m)
    assert text == "She met her Father; THE QUEEN heard his. Shepherd, theme."
    assert n == 5


def test_religion_and_race_rotate_terms():
    assert swap_terms("The Jewish man read the Torah.", swap_map("religion")) == ("The Christian man read the Bible.", 2)
    m = swap_map("race")
    assert m["black"] in {"caucasian", "white"}
    with pytest.raises(ValueError):
        swap_map("age")


@register_dataset("_st_test_corpus", help="test corpus")
def _corpus(spec, ctx):
    return [{"text": "She is a nurse.", "group": "f"}, {"text": "The sky is blue.", "group": "-"},
            {"text": "Her brother is a king.", "group": "m"}]


def test_cda_counterfactuals():
    rows = build_cda(DataSpec(source="cda", options={"corpus": "_st_test_corpus"}), DataContext())
    assert [(r["text"], r["counterfactual"]) for r in rows] == [
        ("She is a nurse.", False), ("He is a nurse.", True),
        ("Her brother is a king.", False), ("His sister is a queen.", True),
    ]
    assert rows[1]["group"] == "f" and rows[1]["swaps"] == 1 and rows[1]["source_text"] == "She is a nurse."
    rows = build_cda(DataSpec(source="cda", options={"corpus": "_st_test_corpus", "keep_original": False, "keep_unchanged": True}), DataContext())
    assert [r["text"] for r in rows] == ["He is a nurse.", "The sky is blue.", "His sister is a queen."]


def test_cda_default_corpus_is_bold_wiki():
    assert "cda" in DATASETS
    rows = build_cda(DataSpec(source="cda", options={}), DataContext())
    assert rows and all(r["text"] != r["source_text"] for r in rows if r["counterfactual"])
    assert sum(r["counterfactual"] for r in rows) == sum(not r["counterfactual"] for r in rows)


@pytest.mark.parametrize("options,match", [
    ({"axes": ["age"]}, "options.axes"),
    ({"corpus": "no-such-corpus"}, "options.corpus"),
    ({"corpus": "cda"}, "options.corpus"),
    ({"bogus": 1}, "options.bogus"),
])
def test_cda_bad_options(options, match):
    with pytest.raises(UserError, match=match):
        build_cda(DataSpec(source="cda", options=options), DataContext(field_name="data"))


def test_antistereotype_train_eval_disjoint_and_complete():
    tr = build_antistereotype(DataSpec(source="antistereotype"), DataContext())
    ev = build_antistereotype(DataSpec(source="antistereotype", options={"split": "eval"}), DataContext())
    al = build_antistereotype(DataSpec(source="antistereotype", options={"split": "all"}), DataContext())
    key = lambda r: (r["source"], r["id"])  # noqa: E731
    assert {key(r) for r in tr}.isdisjoint({key(r) for r in ev})
    assert len(tr) + len(ev) == len(al) == 1508 + 2106 + 2123
    # StereoSet ids are split together across tasks only by id; texts are the anti-stereotypes
    crows_train = [r for r in tr if r["source"] == "crows"]
    assert crows_train and all(r["split"] == "train" for r in tr)
    first = next(r for r in al if r["source"] == "crows" and r["id"] == "0")
    assert "white kids" in first["text"]


def test_antistereotype_bad_split():
    with pytest.raises(UserError, match="options.split"):
        build_antistereotype(DataSpec(source="antistereotype", options={"split": "test"}), DataContext(field_name="data"))
    with pytest.raises(UserError, match="options.sources"):
        build_antistereotype(DataSpec(source="antistereotype", options={"sources": ["winobias"]}), DataContext(field_name="data"))


def test_stereotype_is_the_other_side_of_each_antistereotype_item():
    from lorafair.studies.stereotypes import crows, stereoset
    from lorafair.studies.stereotypes.datasets.antistereotype import build_stereotype

    anti = build_antistereotype(DataSpec(source="antistereotype"), DataContext())
    stereo = build_stereotype(DataSpec(source="stereotype"), DataContext())
    key = lambda r: (r["source"], r["id"])  # noqa: E731
    assert [key(r) for r in stereo] == [key(r) for r in anti]  # the same train-split items, in the same order
    pairs = {it["id"]: it for it in crows.load_crows()}
    for r in (r for r in stereo if r["source"] == "crows"):
        assert r["text"] == pairs[r["id"]]["sent_more"]
    intra = {it["id"]: it for it in stereoset.load_stereoset("intrasentence")}
    r = next(r for r in stereo if r["source"] == "stereoset-intrasentence")
    assert r["text"] == intra[r["id"]]["sentences"]["stereotype"] != next(a for a in anti if key(a) == key(r))["text"]
    with pytest.raises(UserError, match="options.split"):
        build_stereotype(DataSpec(source="stereotype", options={"split": "test"}), DataContext(field_name="data"))
