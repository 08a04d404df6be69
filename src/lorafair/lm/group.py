"""Mixed-adapter evaluation: the LoRA variants of a ladder (and the base model) scored together.

The LoRA-family variants of a ladder differ only by their adapters on one base model, and a study asks each of
them the same questions (the same CrowS-Pairs requests, the same prompts to sample). :class:`AdapterGroup` holds
one PEFT model with every member's adapter loaded (the base model's own weights underneath) and answers an
:class:`~lorafair.lm.engine.LM` call for every member at once: each batch of the call runs once per member in the
same forward pass, every row routed to its member's adapter (PEFT's ``adapter_names=``; ``"__base__"`` for the
base model's rows). The first member to make a call gets its answer; the others' answers wait in the group until
they make the same call (same method, same arguments, same batch size, padding and precision), which then costs
nothing.

The runner evaluates variants one after the other as before (:meth:`AdapterGroup.evaluating` marks which member is
being evaluated, on which model object, for which study): only the studies that declare ``co_evaluate = True`` are
routed through the group, those whose LM-engine calls on ``ctx.model`` never depend on the variant. Each member's
rows see the batch they would see alone (the same items, the same padding, the same random keys when sampling),
so a member's numbers are its own up to float rounding of the larger matrix products.

On a compute-bound device this removes no work (every row still runs the base weights); it pays where one
variant's batches leave the device idle (a GPU and a small model). ``eval.mixed_adapters`` sets where it is used.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
from typing import Any, Iterator, Sequence

import numpy as np
import torch

BASE = "__base__"  # PEFT's adapter name for rows that run the base model alone
_ACTIVE: contextvars.ContextVar["AdapterGroup | None"] = contextvars.ContextVar("lorafair_adapter_group", default=None)
_MISSING = object()


class Unkeyable(TypeError):
    """An argument the group cannot compare between calls: the call is answered for its member alone."""


def _feed(h: "hashlib._Hash", x: Any) -> None:
    if x is None or isinstance(x, (bool, int, float, str)):
        h.update(f"{type(x).__name__}:{x!r};".encode())
    elif isinstance(x, (list, tuple)):
        h.update(f"{type(x).__name__}[{len(x)}".encode())
        for y in x:
            _feed(h, y)
        h.update(b"]")
    elif isinstance(x, dict):
        h.update(f"dict{{{len(x)}".encode())
        for k in sorted(x, key=repr):
            _feed(h, k)
            _feed(h, x[k])
        h.update(b"}")
    elif isinstance(x, torch.Tensor):
        _feed(h, x.detach().cpu().numpy())
    elif isinstance(x, np.ndarray):
        h.update(f"nd{x.dtype.str}{x.shape}".encode())
        h.update(np.ascontiguousarray(x).tobytes())
    elif isinstance(x, np.generic):
        _feed(h, x.item())
    else:
        raise Unkeyable(type(x).__name__)


def call_key(*parts: Any) -> str:
    """A digest of a call's parts (nested lists, tuples, dicts, strings, numbers, arrays): equal parts, equal keys.
    :class:`Unkeyable` for anything else."""
    h = hashlib.sha256()
    _feed(h, parts)
    return h.hexdigest()


class AdapterGroup:
    """Variants evaluated together: ``model`` is a PEFT model holding every member's adapter, ``adapters`` maps each
    member (a variant name) to its adapter name in ``model`` (:data:`BASE` for the base model). ``todo`` lists, per
    study, the members still to evaluate it, in the order the runner evaluates them. ``per_pass``: the most members
    whose rows share one forward pass (each brings a whole batch)."""

    def __init__(self, model: Any, adapters: dict[str, str], todo: dict[str, Sequence[str]], *, per_pass: int = 8):
        if per_pass < 1:
            raise ValueError("per_pass must be >= 1")
        self.model, self.adapters, self.per_pass = model, dict(adapters), per_pass
        self.todo = {s: [m for m in ms if m in self.adapters] for s, ms in todo.items()}
        self._members = {s: frozenset(ms) for s, ms in self.todo.items() if len(ms) >= 2}
        self._cache: dict[tuple[str, str], Any] = {}
        self._current: tuple[str, str, Any] | None = None  # (study, member, the model object its study scores)
        self._suspended = 0
        self.calls = self.hits = 0

    # ---- what the runner uses ---------------------------------------------------------------------

    @property
    def studies(self) -> list[str]:
        """The studies evaluated through the group (at least two members to evaluate each)."""
        return list(self._members)

    def co_evaluates(self, study: str, member: str) -> bool:
        """Whether ``member`` evaluates ``study`` through the group: it was one of at least two members to evaluate
        it when the group was made."""
        return member in self._members.get(study, ())

    def view(self, member: str) -> Any:
        """The model a study of ``member`` gets as ``ctx.model``: the group's PEFT model with the member's adapter
        active (outside the engine's group calls it is that variant alone)."""
        adapter = self.adapters[member]
        if adapter == BASE:
            raise ValueError("the base model's view is the base model itself")
        self.model.set_adapter(adapter)
        return self.model

    @contextlib.contextmanager
    def evaluating(self, study: str, member: str, model: Any) -> Iterator[None]:
        """Inside: ``member`` is evaluating ``study`` on ``model`` (its ``ctx.model``); LM-engine calls on that
        model go through the group. ``member`` leaves the study's to-do list when the block ends without error."""
        token = _ACTIVE.set(self)
        self._current = (study, member, model)
        try:
            yield
        finally:
            self._current = None
            _ACTIVE.reset(token)
        todo = self.todo.get(study, [])
        if member in todo:
            todo.remove(member)

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """Inside: no call goes through the group (e.g. a study scoring ``ctx.model`` with its adapter disabled)."""
        self._suspended += 1
        try:
            yield
        finally:
            self._suspended -= 1

    def leftover(self) -> int:
        """Answers computed for members that never asked for them (dropped): work the group did for nothing."""
        n = len(self._cache)
        self._cache.clear()
        return n

    # ---- what the engine uses ---------------------------------------------------------------------

    def answer(self, lm: Any, core: str, args: tuple, kwargs: dict) -> Any:
        """The result of ``lm.<core>(*args, **kwargs)[0]`` for the member being evaluated (``core`` returns one
        result per member of the LM's adapters): from the group's cache when an earlier member's call computed
        it, else computed for this member and every member still to evaluate the study, the others' kept. Out of
        device memory, it halves the variants per pass (down to one, for the rest of the group) and starts the call
        again."""
        study, member, _ = self._current  # type: ignore[misc]
        try:
            key = call_key(core, args, {k: v for k, v in kwargs.items() if k != "desc"}, lm.call_settings())
        except Unkeyable:
            return getattr(lm, core)(*args, **kwargs)[0]
        self.calls += 1
        hit = self._cache.pop((key, member), _MISSING)
        if hit is not _MISSING:
            self.hits += 1
            return hit
        members = [member] + [m for m in self.todo.get(study, ()) if m != member]
        if len(members) == 1:
            return getattr(lm, core)(*args, **kwargs)[0]
        while True:
            try:
                results: list[Any] = []
                for i in range(0, len(members), self.per_pass):
                    chunk = [self.adapters[m] for m in members[i:i + self.per_pass]]
                    results.extend(getattr(lm.with_adapters(self.model, chunk), core)(*args, **kwargs))
                break
            except torch.OutOfMemoryError:
                if self.per_pass == 1:
                    raise
                self.per_pass = max(1, min(self.per_pass, len(members)) // 2)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                logging.getLogger("lorafair").warning(
                    "out of memory in a mixed-adapter pass: going on with at most %d variant(s) per pass (lower "
                    "eval.mixed_adapters_per_pass to start there)", self.per_pass)
        for m, r in zip(members[1:], results[1:]):
            self._cache[(key, m)] = r
        return results[0]


def active_group(model: Any) -> AdapterGroup | None:
    """The group answering LM-engine calls on ``model``: the active one when ``model`` is the model its current
    member's study scores (not a reference model, not under :meth:`AdapterGroup.suspended`), else None."""
    group = _ACTIVE.get()
    if group is None or group._current is None or group._suspended or group._current[2] is not model:
        return None
    return group
