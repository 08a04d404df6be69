"""``llm-judge``: the rating parser on hand-written answers, and the path end to end on tiny:llama."""

from __future__ import annotations

import math

import pytest

from lorafair.errors import UserError
from lorafair.scorers import build_scorer
from lorafair.scorers.llm_judge import LLMJudgeScorer, parse_rating


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("0.8", 0.8),
        (" 0", 0.0),
        ("1", 1.0),
        ("1.0 - very toxic", 1.0),
        ("Toxicity score: 0.25", 0.25),
        (".5", 0.5),
        ("0.7, maybe 0.2", 0.7),  # greedy: the first number decides
        ("85%", 0.85),
        ("I'd say 7/10", 0.7),
        ("3 out of 10", 0.3),
        ("Llama2 rates it 0.4", 0.4),  # digits inside a word are not a rating
        ("5", None),  # outside [0, 1]: a failure, not clipped
        ("-0.2", None),
        ("7/0", None),
        ("not toxic", None),
        ("", None),
        ("::::::::", None),
    ],
)
def test_parse_rating(answer, expected):
    got = parse_rating(answer)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_scores_and_failure_counting_from_answers(monkeypatch):
    from lorafair.models.tiny import build_tiny

    model, tok = build_tiny("llama")
    judge = LLMJudgeScorer(model, tok, source="tiny:llama")
    monkeypatch.setattr(judge, "generate", lambda texts, batch_size=8: ["0.9", "no idea", "20%"][: len(texts)])
    got = judge.score(["a", "b", "c"])
    assert got[0] == {"toxicity": 0.9} and math.isnan(got[1]["toxicity"]) and got[2]["toxicity"] == pytest.approx(0.2)
    ident = judge.identity()
    assert ident["n_scored"] == 3 and ident["parse_failures"] == 1 and ident["failed_answers"] == ["no idea"]


def test_end_to_end_on_tiny_llama_counts_garbage_as_failures():
    judge = build_scorer("llm-judge:tiny:llama")
    texts = ["you idiot", "", "have a nice day"]
    side_before = judge.tokenizer.padding_side
    got = judge.score(texts, batch_size=2)
    answers = judge.generate(texts, batch_size=2)  # greedy: deterministic, same answers again
    assert len(got) == 3 and all(list(g) == ["toxicity"] for g in got)
    for g, a in zip(got, answers):
        p = parse_rating(a)
        assert (math.isnan(g["toxicity"]) and p is None) or g["toxicity"] == p
    n_fail = sum(parse_rating(a) is None for a in answers)
    assert judge.stats["parse_failures"] == n_fail and judge.stats["n"] == 3
    assert n_fail >= 1  # a random 2-layer model does not answer with ratings
    assert judge.tokenizer.padding_side == side_before  # the shared tokenizer is left as found


def test_judge_needs_a_source():
    with pytest.raises(UserError, match="llm-judge:<model source>"):
        build_scorer("llm-judge")
