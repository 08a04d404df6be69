"""A variant's model without a second copy of the base weights.

A LoRA-family variant adds adapter layers around the base model's linear layers and never writes their
weights, so it does not need its own copy of them: :func:`variant_copy` copies the module tree of the
base model (so injecting adapters leaves the base model's own tree untouched) while its parameters and
buffers stay the base model's tensors. A 7B ladder then holds one copy of the base weights plus
adapters, instead of one per variant being trained or evaluated.

A full copy is still made where the weights are written or re-laid out: full fine-tuning, methods whose
initialisation rewrites the base layers (PiSSA: ``adapters_off_is_base`` is false), and FSDP or
DeepSpeed, which flatten and shard the parameters they are given.
"""

from __future__ import annotations

import copy
import itertools
import os

from lorafair.methods import adapters_off_is_base, is_peft_method


def shares_base_weights(method: str) -> bool:
    """Whether a ``method`` variant can be built on the base model's own weight tensors."""
    sharded = any(os.environ.get(k, "").lower() in ("1", "true") for k in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"))
    return is_peft_method(method) and adapters_off_is_base(method) and not sharded


def variant_copy(model, method: str):
    """A copy of ``model`` for a ``method`` variant: its module tree is new; its parameters and buffers are
    ``model``'s own tensors when :func:`shares_base_weights`, else copies (a plain deep copy)."""
    if not shares_base_weights(method):
        return copy.deepcopy(model)
    memo = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    return copy.deepcopy(model, memo)
