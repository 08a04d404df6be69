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
    lora_kwargs: dict[str, Any] = field(default_factory=dict)  # peft.LoraConfig keywords besides r, alpha, dropout …
    adapters_off_is_base: bool = True
    mixed_batches: bool = True  # PEFT runs its adapters in mixed-adapter batches (``adapter_names=``): not DoRA
    description: str = ""  # also the description of the ``variants.<name>`` config field
    default_ranks: tuple[int, ...] = ()  # ``variants.<name>.ranks`` when a recipe does not set it (empty: off)


METHODS: Registry[Method] = Registry("PEFT method", "variants")


def register_method(method: Method) -> Method:
    """Add ``method`` to the registry (a second entry of the same name is refused)."""
    return METHODS.register(method.name, method.description)(method)


def peft_methods() -> tuple[str, ...]:
    """Names of the registered PEFT methods, in registration order (the ladder's order)."""
    return tuple(METHODS.ordered())


def get_method(name: str) -> Method:
    return METHODS.get(name)


def is_peft_method(name: str) -> bool:
    """True for a registered PEFT method (not for ``base``, ``full`` or a reference policy)."""
    return name in METHODS


def adapters_off_is_base(method: str) -> bool:
    """Whether a ``method`` variant with its adapters disabled is the base model: false for methods whose
    initialisation rewrites the base layers (PiSSA); true for a name that is not a PEFT method (nothing to
    disable)."""
    return not is_peft_method(method) or get_method(method).adapters_off_is_base


def mixes_adapters(method: str) -> bool:
    """Whether ``method`` variants can share a mixed-adapter batch with the base model and each other
    (:mod:`lorafair.lm.group`): PEFT runs the method's adapters per row (not DoRA's), and its base layers are the
    base model's (not PiSSA's)."""
    return is_peft_method(method) and get_method(method).mixed_batches and get_method(method).adapters_off_is_base


def method_of_lora_config(cfg: dict) -> str:
    """The registered method that made a saved peft ``LoraConfig`` (``adapter_config.json`` as a dict): the method
    with the most ``lora_kwargs`` that the config matches (a string keyword by prefix: ``pissa_niter_16`` is
    PiSSA), the first registered method (plain LoRA, no keywords) when no other matches."""
    def matches(m: Method) -> bool:
        for k, want in m.lora_kwargs.items():
            got = cfg.get(k)
            if isinstance(want, str):
                if not (isinstance(got, str) and got.lower().startswith(want.lower())):
                    return False
            elif got != want:
                return False
        return True

    found = [get_method(n) for n in peft_methods() if matches(get_method(n))]
    return max(found, key=lambda m: len(m.lora_kwargs)).name if found else peft_methods()[0]


# peft initialisations that rewrite the base layers' weights, besides the registered methods' own (a
# PEFT model loaded from elsewhere may use one): its base layers are not the base model's weights
PEFT_BASE_REWRITING_INITS = ("olora", "corda", "loftq")


def base_rewriting_inits() -> tuple[str, ...]:
    """Prefixes of ``LoraConfig.init_lora_weights`` values whose adapters rewrite the base layers: the inits of
    the registered methods that are not the base with adapters off (``pissa``; ``pissa_niter_16`` starts with
    it), then peft's other such inits."""
    own = [str(m.lora_kwargs.get("init_lora_weights")).lower() for m in (get_method(n) for n in peft_methods())
           if not m.adapters_off_is_base and isinstance(m.lora_kwargs.get("init_lora_weights"), str)]
    return tuple(dict.fromkeys(own + list(PEFT_BASE_REWRITING_INITS)))


register_method(Method("lora", description="LoRA through peft.", default_ranks=(1, 2, 4, 8, 16, 32, 64, 128, 256)))
register_method(Method("dora", lora_kwargs={"use_dora": True}, mixed_batches=False, description="DoRA (weight-decomposed LoRA) through peft."))
register_method(Method("rslora", lora_kwargs={"use_rslora": True},
                       description="rank-stabilised LoRA (alpha/sqrt(r) scaling) through peft."))
register_method(Method("pissa", lora_kwargs={"init_lora_weights": "pissa"}, adapters_off_is_base=False,
                       description="PiSSA (principal singular vectors init) through peft."))
