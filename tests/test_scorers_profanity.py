"""``profanity``: alt-profanity-check behind the scorer contract."""

from __future__ import annotations

import pytest

from lorafair.errors import UserError
from lorafair.scorers import build_scorer, scorer_availability

pytest.importorskip("profanity_check")


def test_profanity_scores_in_order_with_empty_text():
    import profanity_check

    s = build_scorer("profanity")
    texts = ["have a nice day", "", "fuck this shit", "have a nice day"]
    got = s.score(texts, batch_size=3)  # batches of 3 and 1
    assert [list(g) for g in got] == [["profanity"]] * 4 and s.main_label == "profanity"
    expected = profanity_check.predict_prob(texts)
    assert [g["profanity"] for g in got] == pytest.approx(list(expected), abs=1e-12)
    assert got[2]["profanity"] > 0.9 > 0.2 > got[0]["profanity"]
    assert got[0] == got[3]


def test_profanity_identity_and_availability():
    ident = build_scorer("profanity").identity()
    assert ident["name"] == "profanity" and ident["package"] == "alt-profanity-check"
    assert set(ident["weights_sha256"]) == {"model.joblib", "vectorizer.joblib"}
    assert all(len(h) == 64 for h in ident["weights_sha256"].values())
    assert scorer_availability("profanity")[0] is True


def test_profanity_takes_no_argument():
    with pytest.raises(UserError, match="profanity without an argument"):
        build_scorer("profanity:strict")
