"""Evaluation precision: which LM-engine operations run under bf16 autocast.

The engine has two kinds of work: ``score`` (every forward pass whose log-probabilities are read:
log-likelihoods, perplexity, answer log-probs, next-token distributions) and ``sample`` (text
generation: nucleus sampling and greedy decoding). Each can run in fp32 or under
``torch.autocast(dtype=torch.bfloat16)``: the weights stay fp32, matrix products run in bf16, the residual
stream and the log-softmax stay fp32 (the engine casts logits to float32 before reading them).

bf16 is a speed lever only where the hardware computes it natively (a GPU with bf16, a CPU with
AVX512-BF16 or AMX); on other CPUs it is emulated and far slower than fp32. It also moves single
log-probabilities (on SmolLM2-135M, CrowS-Pairs sentences by 0.12 nats at the median, up to 7 nats),
so ``auto`` uses it only for the operations a study declares safe (``Study.bf16_auto``): those whose
output is a decision and whose agreement with fp32 was measured (``docs/performance.md``: the stereotype
benchmarks' likelihood comparisons), never for studies that report likelihood values (held-out loss, KL
divergence), nor for sampling (bf16 changes the draws, and at the demo's size the answer with them).

The runner resolves the recipe's ``eval.precision`` per study (:func:`resolve`) and evaluates the
study inside :func:`use` ; :class:`lorafair.lm.LM` reads the active setting (:func:`autocast_for`).
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterable, Iterator

import torch

OPS = ("score", "sample")
_ACTIVE: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("lorafair_eval_precision", default={})


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 matmuls natively (AVX512-BF16 or AMX tiles, as oneDNN uses them). Without
    them bf16 on a CPU is emulated and far slower than fp32 (e.g. an AVX2-only CPU), so ``auto`` keeps fp32."""
    for probe in (getattr(torch.cpu, "_is_amx_tile_supported", None), getattr(torch.cpu, "_is_avx512_bf16_supported", None)):
        try:
            if probe is not None and probe():
                return True
        except Exception:  # noqa: BLE001 - a probe missing from this torch build: not native
            pass
    return False


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bf16 natively (a CUDA device with bf16, or a CPU with native bf16)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if dev.type == "cpu":
        return native_bf16_cpu()
    return False


def resolve(setting: str, device: torch.device | str, bf16_auto: Iterable[str] = ()) -> dict[str, str]:
    """The precision of each operation (``{"score": "fp32"|"bf16", "sample": …}``) for a study evaluated with
    ``eval.precision = setting`` on ``device``. ``bf16_auto``: the operations the study declares safe in bf16
    (used by ``auto`` where bf16 is native). ``bf16`` forces bf16 for every operation, ``fp32`` for none."""
    if setting == "fp32":
        return {op: "fp32" for op in OPS}
    if setting == "bf16":
        return {op: "bf16" for op in OPS}
    if setting != "auto":
        raise ValueError(f"eval precision must be auto, bf16 or fp32, not {setting!r}")
    safe = set(bf16_auto)
    native = native_bf16(device)
    return {op: "bf16" if native and op in safe else "fp32" for op in OPS}


@contextlib.contextmanager
def use(precisions: dict[str, str]) -> Iterator[None]:
    """Every :class:`lorafair.lm.LM` operation inside runs at ``precisions`` (missing operations: fp32)."""
    token = _ACTIVE.set(dict(precisions))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def active(op: str) -> str:
    """The precision of operation ``op`` in the current context ("fp32" outside :func:`use`)."""
    return _ACTIVE.get().get(op, "fp32")


def precision_of(op: str, override: str | None = None) -> str:
    """The precision operation ``op`` runs at: ``override`` when given, else the active setting."""
    return override or active(op)


def autocast_for(op: str, device: torch.device | str, override: str | None = None):
    """A context for operation ``op`` on ``device``: bf16 autocast when ``override`` (else the active setting)
    says bf16, else a no-op."""
    if precision_of(op, override) != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


@contextlib.contextmanager
def bf16_linear_weights(model, enabled: bool = True, *, trainable: bool = False):
    """For the duration of the block, the weights of ``model``'s plain linear layers are bf16 copies: the frozen
    ones, and with ``trainable`` every one (for no-grad scoring under bf16 autocast).

    Under bf16 autocast every linear layer casts its fp32 weight to bf16 at each forward pass, and autocast
    caches casts of trainable leaves only: a LoRA training recasts every frozen base weight at every step.
    Storing those weights in bf16 gives bit-identical matrix products (autocast's cast is the same
    round-to-nearest) without the per-step cast. Only weights used by nothing but ``F.linear`` qualify: a
    weight tied to another module (embeddings), a layer with DoRA (its weight norm reads the fp32 weight), or
    one outside a plain ``torch.nn.Linear`` is left as it is. The original fp32 parameters are put back on exit,
    so the model is unchanged afterwards (and a LoRA variant's weights stay the base model's own tensors).

    Under bf16 autocast, scoring recasts every weight at every forward pass too (autocast caches nothing
    without gradients), so the LM engine holds the copies for a whole scoring call (:class:`lorafair.lm.LM`)."""
    if not enabled:
        yield 0
        return
    if any(any(getattr(m, "use_dora", {}).values()) for m in model.modules() if isinstance(getattr(m, "use_dora", None), dict)):
        yield 0
        return
    counts: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        counts[id(p)] = counts.get(id(p), 0) + 1
    swapped = []
    for m in model.modules():
        if type(m) is not torch.nn.Linear:
            continue
        w = m.weight
        if (w.requires_grad and not trainable) or w.dtype != torch.float32 or counts.get(id(w), 0) != 1:
            continue
        m.weight = torch.nn.Parameter(w.detach().to(torch.bfloat16), requires_grad=False)
        swapped.append((m, w))
    try:
        yield len(swapped)
    finally:
        for m, w in swapped:
            m.weight = w
