"""The LM as lending policy on tiny:llama: P(approve) from answer-token probabilities; batched == one-by-one."""

import numpy as np
import pytest
import torch

from lorafair.models.tiny import build_tiny
from lorafair.studies.decisions.lm_policy import LMPolicy
from lorafair.studies.decisions.render import render_prompts
from lorafair.studies.decisions.simulator import LendingEnv, SimConfig, run_episodes

CFG = SimConfig()


@pytest.fixture(scope="module")
def tiny():
    return build_tiny("llama")


def _prompts(n=5, rounds=3, history=2):
    """Prompts of different lengths: round 3 of n episodes with 2 past decisions each."""
    env = LendingEnv(CFG, n, rounds, seed=0)
    for _ in range(rounds - 1):
        env.step(env.applicants().score >= 600)
    return env.applicants(), env.recent(history)


def test_prompt_shows_applicant_history_and_outcomes():
    a, hist = _prompts(2)
    p = render_prompts(a, hist, CFG.groups)[0]
    lines = p.split("\n")
    assert lines[0] == "Lending decisions (approve or deny)." and len(lines) == 4
    assert lines[-1].startswith(f"Applicant: group {CFG.groups[a.group[0]]}, credit score {a.score[0]},")
    assert lines[-1].endswith("Decision:")
    assert all(("Decision: approve." in x) or ("Decision: deny." in x) for x in lines[1:3])
    blind = render_prompts(a, hist, CFG.groups, include_group=False)[0]
    assert "group" not in blind


def test_single_token_answers_read_from_next_token_logprobs(tiny):
    model, tok = tiny
    pol = LMPolicy(model, tok, CFG.groups, answers=("a", "d"), batch_size=8)  # one byte token each
    assert pol.single_token
    a, hist = _prompts(4)
    prompts = render_prompts(a, hist, CFG.groups)
    p = pol.approve_prob(a, hist)
    ia, id_ = tok("a", add_special_tokens=False)["input_ids"][0], tok("d", add_special_tokens=False)["input_ids"][0]
    for j, text in enumerate(prompts):
        ids = torch.tensor([tok(text)["input_ids"]])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -1]
        expected = torch.softmax(logits[[ia, id_]], dim=0)[0].item()
        assert p[j] == pytest.approx(expected, abs=1e-5)
    assert len(pol.answer_mass) == 4 and all(0 < m < 1 for m in pol.answer_mass)


def test_multi_token_answers_scored_by_teacher_forcing(tiny):
    model, tok = tiny
    pol = LMPolicy(model, tok, CFG.groups)  # " approve" / " deny" are several byte tokens here
    assert not pol.single_token
    a, hist = _prompts(2)
    text = render_prompts(a, hist, CFG.groups)[0]
    lp = pol.answer_logprobs([text])[0]
    for k, ans in enumerate((" approve", " deny")):
        p_ids = tok(text)["input_ids"]
        a_ids = tok(ans, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([p_ids + a_ids])).logits[0], -1)
        expected = sum(logp[len(p_ids) - 1 + i, t].item() for i, t in enumerate(a_ids))
        assert lp[k] == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("answers", [("a", "d"), (" approve", " deny")])
def test_batched_equals_one_by_one(tiny, answers):
    model, tok = tiny
    a, hist = _prompts(6)
    prompts = render_prompts(a, hist, CFG.groups)
    assert len({len(tok(p)["input_ids"]) for p in prompts}) > 1  # padding really happens
    batched = LMPolicy(model, tok, CFG.groups, answers=answers, batch_size=6)
    single = LMPolicy(model, tok, CFG.groups, answers=answers, batch_size=1)
    lb, ls = batched.answer_logprobs(prompts), single.answer_logprobs(prompts)
    np.testing.assert_allclose(lb, ls, atol=1e-4)
    assert np.array_equal(lb[:, 0] >= lb[:, 1], ls[:, 0] >= ls[:, 1])
    # the LM head restricted to the last positions gives the same numbers as the full logits
    full = LMPolicy(model, tok, CFG.groups, answers=answers, batch_size=6)
    full._keep_ok = False
    np.testing.assert_allclose(full.answer_logprobs(prompts), lb, atol=1e-5)


def test_lm_policy_in_the_simulator(tiny):
    model, tok = tiny
    pol = LMPolicy(model, tok, CFG.groups, answers=("a", "d"))
    log = run_episodes(pol, CFG, episodes=4, rounds=3, seed=0, history=2)
    assert np.array_equal(log.approved, log.approve_prob >= 0.5)
    again = run_episodes(LMPolicy(model, tok, CFG.groups, answers=("a", "d")), CFG, episodes=4, rounds=3, seed=0, history=2)
    np.testing.assert_allclose(log.approve_prob, again.approve_prob)
    # episode-by-episode (batch of 1 episode) gives the same decisions as 4 parallel episodes
    one = run_episodes(LMPolicy(model, tok, CFG.groups, answers=("a", "d")), CFG, episodes=1, rounds=3, seed=0, history=2)
    assert np.array_equal(one.approved[0], log.approved[0])


def test_identical_answers_rejected(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="identically"):
        LMPolicy(model, tok, CFG.groups, answers=("a", "a"))


def test_sampled_decisions_follow_the_model_probability(tiny):
    model, tok = tiny
    log = run_episodes(LMPolicy(model, tok, CFG.groups, answers=("a", "d")), CFG, episodes=6, rounds=2, seed=0, decision="sample")
    u = LendingEnv(CFG, 6, 2, seed=0).u_decide
    assert np.array_equal(log.approved, u < log.approve_prob)
    assert 0 < log.approved.sum() < log.approved.size  # P ≈ 0.46: some approved, some denied


@pytest.mark.slow
def test_embedded_model_answers_are_single_tokens_and_batching_holds():
    from lorafair.models.sources import load_model

    model, tok = load_model("embedded:smollm2-135m-instruct")
    pol = LMPolicy(model, tok, CFG.groups, batch_size=6)
    assert pol.single_token and pol.answer_ids == [[25312], [16310]]
    a, hist = _prompts(6)
    prompts = render_prompts(a, hist, CFG.groups)
    np.testing.assert_allclose(pol.answer_logprobs(prompts),
                               LMPolicy(model, tok, CFG.groups, batch_size=1).answer_logprobs(prompts), atol=1e-4)
