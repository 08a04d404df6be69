"""Applicants (and the episode's recent decisions) as text, shared by the training data and the LM policy,
so a fine-tuned model is evaluated on prompts of exactly the form it was trained on.

Example (history of 2, group shown)::

    Lending decisions (approve or deny).
    Applicant: group A, credit score 702, income $55.3k, loan $12.1k. Decision: approve. Outcome: repaid.
    Applicant: group B, credit score 640, income $40.0k, loan $8.0k. Decision: deny.
    Applicant: group B, credit score 655, income $42.1k, loan $9.9k. Decision:

The completion is ``" approve"`` or ``" deny"`` (:data:`ANSWERS`): each is one token for GPT-2-style BPE
tokenizers such as SmolLM2's (``Ġapprove`` = 25312, ``Ġdeny`` = 16310) and Llama's; for other tokenizers
(e.g. the byte-level one of ``tiny:`` models) the LM policy scores the whole answer sequence.
"""

from __future__ import annotations

from typing import Sequence

from lorafair.studies.decisions.simulator import Applicants, Step

HEADER = "Lending decisions (approve or deny)."
ANSWERS = (" approve", " deny")  # (approve, deny)


def describe(group: str | None, score: int, income: float, loan: float) -> str:
    who = f"group {group}, " if group is not None else ""
    return f"Applicant: {who}credit score {int(score)}, income ${income:.1f}k, loan ${loan:.1f}k."


def render_step(step: Step, include_group: bool) -> str:
    """One past decision: the applicant, the decision and, when approved, the outcome."""
    line = describe(step.group if include_group else None, step.score, step.income, step.loan)
    line += " Decision: approve." if step.approved else " Decision: deny."
    if step.outcome is not None:
        line += f" Outcome: {step.outcome}."
    return line


def render_prompts(applicants: Applicants, histories: Sequence[Sequence[Step]], groups: Sequence[str],
                   include_group: bool = True) -> list[str]:
    """One prompt per applicant: header, the episode's recent decisions (oldest first), the applicant,
    ending with ``"Decision:"`` (the answer follows with a leading space)."""
    if len(histories) != len(applicants):
        raise ValueError(f"{len(applicants)} applicants but {len(histories)} histories")
    out = []
    for i in range(len(applicants)):
        lines = [HEADER] + [render_step(s, include_group) for s in histories[i]]
        g = groups[int(applicants.group[i])] if include_group else None
        lines.append(describe(g, applicants.score[i], applicants.income[i], applicants.loan[i]) + " Decision:")
        out.append("\n".join(lines))
    return out
