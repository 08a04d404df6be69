"""The PEFT methods of the ladder, as a registry (learned from peft's ``register_peft_method``).

A method is one :class:`Method` entry: its name (the ``variants.<name>`` section of a recipe and the
``<name>-r<rank>`` variant names), whether it is trained at ranks, the ``peft.LoraConfig`` keywords that
make it, and whether turning its adapters off gives the base model back (false for PiSSA, whose
initialisation rewrites the base weights with their residual). Everything else — the config schema, the
ladder, the runner, the shift study, the report's colours — reads this registry; no code outside it
compares a method name with a string.

Adding a LoRA-family method is one entry::

    register_method(Method("olora", lora_kwargs={"init_lora_weights": "olora"}, adapters_off_is_base=False,
                           description="OLoRA (QR-orthonormal init) through peft."))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lorafair.registry import Registry


@dataclass(frozen=True)
class Method:
    name: str
    ranked: bool = True
    lora_kwargs: dict[str, Any] = field(default_factory=dict)
    adapters_off_is_base: bool = True
    description: str = ""


METHODS: Registry[Method] = Registry("PEFT method", "variants")


def register_method(method: Method) -> Method:
    """Add ``method`` to the registry (a second entry of the same name is refused)."""
    return METHODS.register(method.name, method.description)(method)


def peft_methods() -> tuple[str, ...]:
    """Names of the registered PEFT methods, in registration order (the ladder's order)."""
    return tuple(METHODS.ordered())


def get_method(name: str) -> Method:
    return METHODS.get(name)


register_method(Method("lora", description="LoRA through peft."))
register_method(Method("dora", lora_kwargs={"use_dora": True}, description="DoRA (weight-decomposed LoRA) through peft."))
register_method(Method("rslora", lora_kwargs={"use_rslora": True},
                       description="rank-stabilised LoRA (alpha/sqrt(r) scaling) through peft."))
register_method(Method("pissa", lora_kwargs={"init_lora_weights": "pissa"}, adapters_off_is_base=False,
                       description="PiSSA (principal singular vectors init) through peft."))
