"""The LM engine: the one place that runs a causal LM over batches and reads its log-probabilities.

Every study scores text through :class:`LM` (the contract follows lm-evaluation-harness
``lm_eval/api/model.py``: ``loglikelihood``, ``loglikelihood_rolling``, ``generate_until``):

- :meth:`LM.loglikelihood` — ``log P(continuation | context)`` per token of each ``(context, continuation)``
  request (:class:`Scored`), tokenized as lm-evaluation-harness ``_encode_pair`` (:func:`.encode.encode_pair`);
- :meth:`LM.rolling_nll` — (summed NLL, tokens) of whole texts, every token predicted after the prefix token;
- :meth:`LM.sequence_nll` — (summed NLL, tokens) of pre-encoded ``input_ids``/``labels`` records;
- :meth:`LM.answer_logprobs` — ``log P(answer | prompt)`` for a few fixed answers: the next-token
  distribution when every answer is one token, else teacher forcing over the answer tokens;
- :meth:`LM.distributions` — full next-token distributions at chosen positions (shift study);
- :meth:`LM.sample` / :meth:`LM.generate` — seeded nucleus sampling and greedy decoding.

Underneath there is one padding routine (:func:`.batching.pad`), one batching routine
(:func:`.batching.batches`) and one forward pass (:meth:`LM.forward`): no gradients, no KV cache, the LM
head applied to the needed positions only (transformers' ``logits_to_keep``) where a method asks for it
and the model supports it. Log-probabilities are ``log_softmax`` of the logits cast to float32, computed
only at the positions read. Per-sequence sums (:meth:`rolling_nll`, :meth:`sequence_nll`) are float32
sums over the padded row; per-token values are returned as float64 arrays.

Padding side and batch order are parameters because they are part of the numbers: a row's logits are
the same up to float rounding whatever its batch, but not bit for bit (on SmolLM2-135M, left vs right
padding, or a different batch composition, moves answer log-probabilities by about 2e-5 nats). Each
method's default is the one its study has always used, so results are unchanged.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import inspect
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from lorafair.errors import UserError
from lorafair.lm.batching import PositionBatch, batches, pad, position_batches, position_ids
from lorafair.lm.encode import IGNORE, config_prefix_id, encode_pair, max_positions, prefix_token_id, tokens, with_prefix
from lorafair.lm.group import active_group
from lorafair.lm.heap import retained_heap
from lorafair.lm.nucleus import NucleusSampler
from lorafair.lm.precision import OPS, autocast_for, bf16_linear_weights, precision_of


@dataclass
class Scored:
    """Per-token log-probabilities (natural log) of one continuation, and the token ids scored.
    ``greedy``: whether every continuation token is the model's most likely next token
    (lm-evaluation-harness ``is_greedy``; None when not computed)."""

    token_logprobs: np.ndarray  # float64, one per scored continuation token
    token_ids: list[int]
    greedy: bool | None = None

    @property
    def total(self) -> float:
        return float(self.token_logprobs.sum())

    @property
    def mean(self) -> float:
        return float(self.token_logprobs.mean()) if len(self.token_logprobs) else float("nan")

    @property
    def n_tokens(self) -> int:
        return len(self.token_logprobs)


def sample_seed(seed: int, batch: int, stream: str = "eval") -> int:
    """A 60-bit seed for batch ``batch`` of a run seeded with ``seed`` (``stream`` separates uses)."""
    return int(hashlib.sha256(f"toxicity-sample:{stream}:{seed}:{batch}".encode()).hexdigest()[:15], 16)


def fork_rng(device: Any):
    """A forked RNG state (CPU, and the CUDA device ``device`` is on): the caller's RNG is left untouched."""
    dev = torch.device(device)
    devices = [dev.index or 0] if dev.type == "cuda" else []
    return torch.random.fork_rng(devices=devices)


def rows_of(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The given flat (batch·position) rows of a batch × positions × features tensor."""
    return x.reshape(-1, x.shape[-1]).index_select(0, rows.to(x.device))


def rows_logp(logits: torch.Tensor, rows: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Log-posteriors at the given flat positions: (len(rows) × vocabulary), in ``dtype``."""
    return torch.log_softmax(rows_of(logits, rows).to(dtype), dim=-1)


def model_device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


def co_evaluated(fn):
    """An LM method whose result a :class:`~lorafair.lm.group.AdapterGroup` may compute for several variants at
    once: when the engine's model is the model a group member's study scores, the call goes through the group
    (:meth:`~lorafair.lm.group.AdapterGroup.answer`), which runs ``_<name>_members`` (one result per member of the
    LM's adapters) and keeps the other members' results. Otherwise the method runs as it is."""
    core = f"_{fn.__name__}_members"

    @functools.wraps(fn)
    def call(self, *args, **kwargs):
        group = active_group(self.model) if self._adapters is None else None
        if group is None:
            return fn(self, *args, **kwargs)
        return group.answer(self, core, args, kwargs)

    return call


class LM:
    """A causal LM and its tokenizer, scored in batches of ``batch_size`` sequences on ``device``
    (default: the model's). ``pad_id`` overrides the padding token (default the tokenizer's pad, else
    its EOS, else 0; padding never changes a result, it is masked). ``progress`` shows tqdm bars.
    ``precision``: "bf16" or "fp32" for every operation; None (default) follows the evaluation precision the
    runner set for the study being evaluated (:mod:`.precision`; fp32 outside a run)."""

    def __init__(self, model: Any, tokenizer: Any = None, *, batch_size: int = 16, device: Any = None,
                 progress: bool = False, pad_id: int | None = None, precision: str | None = None):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if precision not in (None, "bf16", "fp32"):
            raise ValueError("precision must be None, 'bf16' or 'fp32'")
        self.precision = precision
        self.model, self.tokenizer = model, tokenizer
        self.batch_size = batch_size
        self.device = device if device is not None else model_device(model)
        self.progress = progress
        self._pad_id = pad_id
        self.logits_to_keep_ok = True  # set False once the model turns out not to support logits_to_keep
        # mixed-adapter batches (:mod:`.group`): the PEFT adapter of each member whose rows every batch holds (None:
        # the model as it is, one member), and the adapter of each row of the batch being run
        self._adapters: list[str] | None = None
        self._row_adapters: list[str] | None = None

    # ---- basics ---------------------------------------------------------------------------------

    def with_adapters(self, model: Any, adapters: Sequence[str]) -> "LM":
        """This engine's settings on ``model`` (a PEFT model holding ``adapters``), every batch run once per adapter
        in one forward pass (PEFT's ``adapter_names=``; ``"__base__"``: the base model): its ``_<method>_members``
        methods return one result per adapter, each from the batches the method makes for one variant."""
        other = copy.copy(self)
        other.model, other._adapters, other._row_adapters = model, list(adapters), None
        return other

    @property
    def _copies(self) -> int:
        """Members whose rows every batch holds (1 without mixed adapters)."""
        return len(self._adapters) if self._adapters else 1

    def _tiled(self, items: Sequence) -> list:
        """A batch's items once per member, member after member."""
        return list(items) * self._copies

    def _blocks(self, rows: Sequence, n: int) -> list:
        """The per-row results of a tiled batch of ``n`` items, split into one block per member."""
        return [rows[m * n:(m + 1) * n] for m in range(self._copies)]

    @contextlib.contextmanager
    def _members_of(self, n: int) -> Iterator[None]:
        """Inside: the forward passes run batches of ``n`` items tiled once per member (:meth:`_tiled`), each row
        with its member's adapter."""
        if self._adapters is None:
            yield
            return
        self._row_adapters = [a for a in self._adapters for _ in range(n)]
        try:
            yield
        finally:
            self._row_adapters = None

    def call_settings(self) -> tuple:
        """What besides its arguments decides a call's result: batch size, padding token, precision of each
        operation (:mod:`.precision`), the tokenizer, the device."""
        return (self.batch_size, self.pad_id, tuple(precision_of(op, self.precision) for op in OPS), id(self.tokenizer),
                str(self.device))

    @property
    def pad_id(self) -> int:
        if self._pad_id is not None:
            return self._pad_id
        for name in ("pad_token_id", "eos_token_id"):
            v = getattr(self.tokenizer, name, None)
            if v is not None:
                return int(v)
        return 0

    @property
    def prefix_id(self) -> int | None:
        """The tokenizer's prefix token (BOS, else EOS): see :func:`.encode.prefix_token_id`."""
        return prefix_token_id(self.tokenizer)

    def _bar(self, items, desc: str):
        from tqdm.auto import tqdm

        return tqdm(items, desc=desc, disable=not self.progress, leave=False)

    @contextlib.contextmanager
    def _inference(self, op: str = "score") -> Iterator[None]:
        """No gradients, and the model in eval mode (restored to training mode afterwards if it was). When
        operation ``op`` runs under bf16 autocast, the linear weights are held as bf16 copies for the whole
        call (:func:`.precision.bf16_linear_weights`: the same products, without autocast recasting every
        weight at every forward pass), and put back after it. On a CPU, freed buffers stay in the heap for the
        next batch (:func:`.heap.retained_heap`)."""
        was_training = bool(getattr(self.model, "training", False))
        if was_training:
            self.model.eval()
        bf16 = precision_of(op, self.precision) == "bf16"
        try:
            with torch.no_grad(), retained_heap(torch.device(self.device).type == "cpu"), \
                    bf16_linear_weights(self.model, bf16, trainable=True):
                yield
        finally:
            if was_training:
                self.model.train()

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, position_ids: torch.Tensor | None = None,
                keep: int | torch.Tensor | None = None, hidden: bool | None = None) -> tuple[torch.Tensor, Any]:
        """The one forward pass: ``(logits, output)``, no gradients, no KV cache. ``keep``: only the logits
        of the last ``keep`` positions (int) or of the positions ``keep`` (1-D tensor) are returned, and
        the LM head is applied to those only when the model accepts ``logits_to_keep`` (otherwise the
        full logits are sliced). ``hidden``: passed as ``output_hidden_states``. Runs under bf16 autocast when the
        ``score`` precision is bf16 (logits are then bf16; every reader casts them to float32)."""
        with autocast_for("score", self.device, self.precision):
            return self._forward(input_ids, attention_mask, position_ids=position_ids, keep=keep, hidden=hidden)

    def _forward(self, input_ids, attention_mask, *, position_ids=None, keep=None, hidden=None):
        dev = self.device
        kwargs: dict[str, Any] = dict(input_ids=input_ids.to(dev), attention_mask=attention_mask.to(dev), use_cache=False)
        if self._row_adapters is not None:
            kwargs["adapter_names"] = self._row_adapters
        if position_ids is not None:
            kwargs["position_ids"] = position_ids.to(dev)
        if hidden is not None:
            kwargs["output_hidden_states"] = hidden
        if keep is None:
            out = self.model(**kwargs)
            return out.logits, out
        n_keep = keep if isinstance(keep, int) else int(keep.numel())
        if self.logits_to_keep_ok:
            out = None
            try:
                out = self.model(**kwargs, logits_to_keep=keep if isinstance(keep, int) else keep.to(dev))
            except TypeError:  # a model without logits_to_keep
                pass
            if out is not None and out.logits.shape[1] == n_keep:
                return out.logits, out
            self.logits_to_keep_ok = False  # not supported (or ignored): slice ourselves from now on
        out = self.model(**kwargs)
        logits = out.logits[:, -keep:] if isinstance(keep, int) else out.logits[:, keep.to(out.logits.device)]
        return logits, out

    def _positions_logp(self, seqs: Sequence[Sequence[int]], positions: Sequence[Sequence[int]], *, side: str = "right",
                        keep: str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """Read one batch: ``log_softmax`` (float32) of the next-token logits at ``positions[i]`` (indices
        into ``seqs[i]``, unpadded) of every sequence. ``keep``: the positions the LM head is applied to
        (``logits_to_keep``): None all of them, ``"positions"`` the distinct positions read, ``"suffix"``
        the shortest suffix of the padded batch holding them. Returns (logp: N × vocabulary, on the
        model's device; row: the sequence of each; col: its position in the padded batch; padded width)."""
        ids, mask = pad(seqs, self.pad_id, side)
        width = ids.shape[1]
        off = [0 if side == "right" else width - len(s) for s in seqs]
        row = torch.tensor([i for i, p in enumerate(positions) for _ in p], dtype=torch.long)
        col = torch.tensor([off[i] + t for i, p in enumerate(positions) for t in p], dtype=torch.long)
        pos = position_ids(mask) if side == "left" else None
        if keep is not None and len(col):
            if keep not in ("positions", "suffix"):
                raise ValueError(f"keep must be None, 'positions' or 'suffix', not {keep!r}")
            cols = torch.unique(col)  # the few distinct positions read (sorted)
            first = int(cols[0])
            if keep == "suffix" or (int(cols[-1]) == width - 1 and cols.numel() == width - first):
                logits, _ = self.forward(ids, mask, position_ids=pos, keep=width - first)
                at = col - first
            else:
                logits, _ = self.forward(ids, mask, position_ids=pos, keep=cols)
                at = torch.searchsorted(cols, col)
        else:
            logits, _ = self.forward(ids, mask, position_ids=pos)
            at = col
        dev = logits.device
        sel = logits[row.to(dev), at.to(dev)]
        return torch.log_softmax(sel.float(), dim=-1), row, col, width

    def _token_logprobs(self, seqs: Sequence[Sequence[int]], labels: Sequence[Sequence[int]], *, side: str = "right",
                        keep: str | None = None, greedy: bool = False):
        """Teacher forcing over one batch: position t predicts ``labels[t+1]`` (not scored where IGNORE).
        Returns (lp: N float32 on the model's device, row, col (padded position t), width, is_argmax: N bool
        or None)."""
        positions = [[t for t in range(len(s) - 1) if lab[t + 1] != IGNORE] for s, lab in zip(seqs, labels)]
        targets = torch.tensor([lab[t + 1] for lab, p in zip(labels, positions) for t in p], dtype=torch.long)
        logp, row, col, width = self._positions_logp(seqs, positions, side=side, keep=keep)
        targets = targets.to(logp.device)
        lp = logp.gather(1, targets[:, None])[:, 0]
        best = (logp.argmax(dim=-1) == targets) if greedy else None
        return lp, row, col, width, best

    def _summed(self, seqs, labels) -> tuple[list[float], list[int]]:
        """Per sequence of one right-padded batch: (summed NLL as a float32 sum over the padded row, tokens). The
        LM head runs at the scored positions only (completion-only records score a few of each row's)."""
        lp, row, col, width, _ = self._token_logprobs(seqs, labels, keep="positions")
        grid = torch.zeros((len(seqs), max(width - 1, 0)), dtype=lp.dtype, device=lp.device)
        grid[row.to(lp.device), col.to(lp.device)] = -lp
        counts = torch.bincount(row, minlength=len(seqs))
        return [float(x) for x in grid.sum(dim=1).cpu()], [int(c) for c in counts]

    # ---- lm-evaluation-harness style requests --------------------------------------------------

    @co_evaluated
    def loglikelihood(self, requests: Sequence[tuple[str, str]], *, order: str = "descending", desc: str = "scoring"
                      ) -> list[Scored]:
        """Score every ``(context, continuation)``: the continuation tokens' log-probabilities given the
        prefix token and the context (:func:`.encode.encode_pair`); results in the order of ``requests``.

        Sequences longer than the model's maximum are cut from the left of the context. The first
        position of a sequence has no left context and is never scored (only a tokenizer with neither
        BOS nor EOS loses a token that way: ``n_tokens`` says so). Batches hold similar lengths
        (longest first, as lm-evaluation-harness)."""
        return self._loglikelihood_members(requests, order=order, desc=desc)[0]

    def _loglikelihood_members(self, requests, *, order: str = "descending", desc: str = "scoring") -> list[list[Scored]]:
        max_len = max_positions(self.model)
        encoded = []
        for context, continuation in requests:
            ctx, cont = encode_pair(self.tokenizer, context, continuation)
            seq, n_ctx = ctx + cont, len(ctx)
            if max_len is not None and len(seq) > max_len:
                cut = len(seq) - max_len
                seq, n_ctx = seq[cut:], max(n_ctx - cut, 0)
            first = max(n_ctx, 1)  # position 0 has no left context: never scored
            encoded.append((seq, [IGNORE] * first + seq[first:]))
        out: list[list[Scored | None]] = [[None] * len(encoded) for _ in range(self._copies)]
        with self._inference():
            for batch in self._bar(batches([len(s) for s, _ in encoded], self.batch_size, order), desc):
                with self._members_of(len(batch)):
                    lp, row, _, _, best = self._token_logprobs(self._tiled([encoded[i][0] for i in batch]),
                                                               self._tiled([encoded[i][1] for i in batch]), greedy=True)
                lp, best = lp.double().cpu(), best.cpu()
                for r in range(len(batch) * self._copies):
                    member, i = divmod(r, len(batch))
                    i = batch[i]
                    sel = row == r
                    out[member][i] = Scored(lp[sel].numpy(), [t for t in encoded[i][1] if t != IGNORE], bool(best[sel].all()))
        return out  # type: ignore[return-value]

    @co_evaluated
    def rolling_nll(self, texts: Sequence[str], *, max_length: int, order: str = "given", desc: str = "perplexity"
                    ) -> list[tuple[float, int]]:
        """Per text: (sum of next-token NLLs in nats, number of predicted tokens). Each text is tokenized as
        the tokenizer does by default and, unless that already starts with it, preceded by the prefix
        token, so every token of the text is predicted, the first one included; truncated to
        ``max_length`` tokens, the prefix token included (longer texts are cut, not windowed)."""
        return self._rolling_nll_members(texts, max_length=max_length, order=order, desc=desc)[0]

    def _rolling_nll_members(self, texts, *, max_length: int, order: str = "given", desc: str = "perplexity"):
        prefix = self.prefix_id
        seqs = [with_prefix(tokens(self.tokenizer, t), prefix)[:max_length] for t in texts]
        return self._nll_of(seqs, [[IGNORE] + s[1:] for s in seqs], order, desc)

    @co_evaluated
    def sequence_nll(self, encoded: Sequence[dict], *, prefix: int | str | None = "auto", order: str = "ascending",
                     desc: str = "held-out loss") -> tuple[list[float], list[int]]:
        """Summed NLL and token count of every encoded record (``input_ids``, ``labels`` with IGNORE on
        unscored positions), in order. A record whose first token is itself a label (a text whose
        tokenizer added no BOS) is scored after ``prefix`` (``"auto"``: the model config's BOS, else EOS,
        as lm-evaluation-harness ``prefix_token_id``; None: no prefix token), so its first token is
        scored too; records that already start with it are unchanged."""
        return self._sequence_nll_members(encoded, prefix=prefix, order=order, desc=desc)[0]

    def _sequence_nll_members(self, encoded, *, prefix: int | str | None = "auto", order: str = "ascending",
                              desc: str = "held-out loss") -> list[tuple[list[float], list[int]]]:
        if prefix == "auto":
            prefix = config_prefix_id(self.model)
        seqs, labels = [], []
        for e in encoded:
            ids, lab = list(e["input_ids"]), list(e["labels"])
            if prefix is not None and lab and lab[0] != IGNORE and ids[0] != prefix:
                ids, lab = [prefix] + ids, [IGNORE] + lab
            seqs.append(ids)
            labels.append(lab)
        return [([n for n, _ in pairs], [c for _, c in pairs]) for pairs in self._nll_of(seqs, labels, order, desc)]

    def _nll_of(self, seqs, labels, order: str, desc: str) -> list[list[tuple[float, int]]]:
        """Per member (one without mixed adapters): (summed NLL, tokens) of every sequence."""
        out: list[list[tuple[float, int] | None]] = [[None] * len(seqs) for _ in range(self._copies)]
        with self._inference():
            for batch in self._bar(batches([len(s) for s in seqs], self.batch_size, order), desc):
                with self._members_of(len(batch)):
                    nll, cnt = self._summed(self._tiled([seqs[i] for i in batch]), self._tiled([labels[i] for i in batch]))
                for mine, nl, cn in zip(out, self._blocks(nll, len(batch)), self._blocks(cnt, len(batch))):
                    for i, x, c in zip(batch, nl, cn):
                        mine[i] = (x, c)
        return out  # type: ignore[return-value]

    # ---- fixed answers --------------------------------------------------------------------------

    def answer_token_ids(self, answers: Sequence[str]) -> list[list[int]]:
        """Token ids of each answer (no special tokens); ValueError if one tokenizes to nothing."""
        ids = [tokens(self.tokenizer, a, special=False) for a in answers]
        if any(len(a) == 0 for a in ids):
            raise ValueError(f"an answer tokenizes to nothing: {answers!r}")
        return ids

    @co_evaluated
    def answer_logprobs(self, prompts: Sequence[str], answers: Sequence[str], *, padding: str = "right",
                        order: str = "given", desc: str = "answers") -> np.ndarray:
        """``log P(answer | prompt)`` for every prompt (rows) and answer (columns), float64.

        The prompt (with the tokenizer's special tokens) and the answer (without) are tokenized separately
        and concatenated, as lm-evaluation-harness scores a continuation. When every answer is a single
        token, one forward pass per batch reads the next-token distribution at the prompt's last
        position; otherwise one pass per answer sums the answer tokens' log-probabilities (teacher
        forcing). The LM head is restricted (``logits_to_keep``) to each row's last position for one-token
        answers, and to the last ``len(answer) + 1`` positions for left-padded teacher forcing;
        right-padded teacher forcing runs it on every position. ``padding`` "left" passes explicit
        ``position_ids``, so a row's positions are those of the unpadded prompt. Padding side, batch order
        and the rows through the LM head change results by float rounding only, but they do change
        them (about 2e-5 nats on SmolLM2-135M): these choices are the studies' own."""
        return self._answer_logprobs_members(prompts, answers, padding=padding, order=order, desc=desc)[0]

    def _answer_logprobs_members(self, prompts, answers, *, padding: str = "right", order: str = "given",
                                 desc: str = "answers") -> np.ndarray:
        """:meth:`answer_logprobs` of every member: members × prompts × answers."""
        answer_ids = self.answer_token_ids(answers)
        single = all(len(a) == 1 for a in answer_ids)
        # teacher forcing: left-padded answers are the batch's last positions (LM head on those and the one
        # after); right-padded ones differ per row (LM head on every position)
        forced_keep = "suffix" if padding == "left" else None
        prompt_ids = [tokens(self.tokenizer, p, special=True) for p in prompts]
        copies = self._copies
        out = np.zeros((copies, len(prompts), len(answers)), dtype=np.float64)
        with self._inference():
            for batch in self._bar(batches([len(p) for p in prompt_ids], self.batch_size, order), desc):
                seqs = self._tiled([prompt_ids[i] for i in batch])
                if single:
                    with self._members_of(len(batch)):
                        logp, _, _, _ = self._positions_logp(seqs, [[len(s) - 1] for s in seqs], side=padding,
                                                             keep="positions")
                    cols = torch.tensor([a[0] for a in answer_ids], device=logp.device)
                    out[:, batch] = logp[:, cols].double().cpu().numpy().reshape(copies, len(batch), len(answers))
                    continue
                for j, a in enumerate(answer_ids):
                    lab = [[IGNORE] * len(s) + a for s in seqs]
                    with self._members_of(len(batch)):
                        lp, row, _, _, _ = self._token_logprobs([s + a for s in seqs], lab, side=padding, keep=forced_keep)
                    lp = lp.cpu()
                    sums = torch.stack([lp[row == r].sum() for r in range(len(seqs))]).double().numpy()
                    out[:, batch, j] = sums.reshape(copies, len(batch))
        return out

    # ---- full distributions (shift study) -------------------------------------------------------

    def position_batches(self, seqs: Sequence[tuple[int, Sequence[int], int]]) -> list[PositionBatch]:
        """Right-padded batches (given order) of ``(index, ids, first)``, scoring the positions that predict
        tokens ``first … len(ids)-1``."""
        return position_batches(seqs, self.pad_id, self.batch_size)

    def distributions(self, batch: PositionBatch, *, dtype: torch.dtype = torch.float32, hidden: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Full next-token log-distributions at the scored positions of ``batch``: (log-posteriors,
        N × vocabulary in ``dtype``, row-major over (sequence, position); their flat indices; the model
        output, with hidden states on request)."""
        logits, out = self.forward(batch.input_ids, batch.attention_mask, hidden=hidden)
        idx = batch.score_mask.flatten().nonzero().squeeze(1).to(logits.device)
        return rows_logp(logits, idx, dtype), idx, out

    # ---- generation -----------------------------------------------------------------------------

    def _generate(self, prompt_ids: list[list[int]], repeat: int = 1, **kwargs) -> list[str]:
        """New text (special tokens skipped) generated after each prompt, left-padded into one batch; each prompt
        ``repeat`` times in a row (as ``num_return_sequences`` orders them).

        With ``repeat`` > 1 the prompts are encoded once: every prompt token but the last goes through the model
        for the distinct prompts only, the KV cache is repeated ``repeat`` times (``Cache.batch_repeat_interleave``)
        and ``generate`` goes on from it, where ``num_return_sequences`` or repeated prompts would encode every
        prompt ``repeat`` times. The cache holds the same keys and values (a model whose forward pass takes no
        cache falls back to repeated prompts).

        Inside :meth:`_members_of`, ``prompt_ids`` are tiled once per member and each prompt row (then each of its
        ``repeat`` rows) runs with its member's adapter."""
        ids, mask = pad(prompt_ids, self.pad_id, "left")
        ids, mask = ids.to(self.device), mask.to(self.device)
        rows = self._row_adapters
        with autocast_for("sample", self.device, self.precision):
            if repeat > 1:
                if (cache := self._shared_prompt_cache(ids, mask, repeat)) is not None:
                    kwargs[self._cache_arg()] = cache
                ids, mask = ids.repeat_interleave(repeat, dim=0), mask.repeat_interleave(repeat, dim=0)
                rows = None if rows is None else [a for a in rows for _ in range(repeat)]
            if rows is not None:
                kwargs["adapter_names"] = rows
            seqs = self.model.generate(input_ids=ids, attention_mask=mask, pad_token_id=self.tokenizer.pad_token_id,
                                       **kwargs)
        return self.tokenizer.batch_decode(seqs[:, ids.shape[1]:], skip_special_tokens=True)

    def _shared_prompt_cache(self, ids: torch.Tensor, mask: torch.Tensor, repeat: int):
        """The KV cache of every prompt token but the last, computed once per distinct prompt and repeated
        ``repeat`` times along the batch; None where it cannot be (prompts of one token, a model without a
        dynamic cache)."""
        if ids.shape[1] < 2:
            return None
        try:
            from transformers import DynamicCache

            cache = DynamicCache(config=getattr(self.model, "config", None))
            rows = {} if self._row_adapters is None else {"adapter_names": self._row_adapters}
            self.model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=position_ids(mask[:, :-1]),
                       use_cache=True, logits_to_keep=1, **{self._cache_arg(): cache}, **rows)
            cache.batch_repeat_interleave(repeat)
        except torch.OutOfMemoryError:
            raise
        except (TypeError, ValueError, AttributeError, NotImplementedError, RuntimeError):
            return None  # this model's forward pass does not fill a DynamicCache: repeated prompts, as before
        return cache

    def _cache_arg(self) -> str:
        """The keyword a KV cache is passed by: ``cache`` where the model's forward takes it (transformers 5),
        ``past_key_values`` before."""
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"

    @co_evaluated
    def sample(self, prompts: Sequence[str], *, k: int, max_new_tokens: int, temperature: float, top_p: float,
               seed: int, stream: str = "eval", desc: str = "sampling") -> list[list[str]]:
        """``k`` sampled continuations (new text only) of every prompt, in order: nucleus sampling (top-p)
        at ``temperature``, no top-k cut, at most ``max_new_tokens`` tokens, the KV cache on. The draw is
        :class:`.nucleus.NucleusSampler`'s (HF's distribution; an exponential race keyed by token id).

        ``batch_size`` counts sequences (prompts × k) per ``generate`` call, at least one prompt each.
        Batch ``b`` is sampled under ``torch.manual_seed(sample_seed(seed, b, stream))`` in a forked RNG
        state (the caller's RNG is left untouched), so the same (prompts, settings, seed, batch size)
        give the same texts, and two models draw the same random numbers (common random numbers)."""
        return self._sample_members(prompts, k=k, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                    seed=seed, stream=stream, desc=desc)[0]

    def _sample_members(self, prompts, *, k: int, max_new_tokens: int, temperature: float, top_p: float, seed: int,
                        stream: str = "eval", desc: str = "sampling") -> list[list[list[str]]]:
        """:meth:`sample` of every member; each member's rows get the random keys they get alone."""
        if k < 1 or max_new_tokens < 1:
            raise ValueError("k and max_new_tokens must be positive")
        for i, p in enumerate(prompts):
            if not p or not p.strip():
                raise UserError("prompts", p, f"non-empty prompts (prompt #{i} is empty)")
        from transformers import LogitsProcessorList

        # the draw of HF's temperature + top-p, made cheaply (lm.nucleus); every member's rows share the keys
        nucleus = NucleusSampler(temperature, top_p, copies=self._copies)
        per_batch = max(1, self.batch_size // k)
        out: list[list[list[str]]] = [[] for _ in range(self._copies)]
        with self._inference("sample"):
            for b, start in enumerate(self._bar(range(0, len(prompts), per_batch), desc)):
                chunk = [tokens(self.tokenizer, p) for p in prompts[start:start + per_batch]]
                with fork_rng(self.device), self._members_of(len(chunk)):
                    torch.manual_seed(sample_seed(seed, b, stream))
                    # each prompt k times in a row (as num_return_sequences does), the prompt encoded once;
                    # greedy on the sampler's choice
                    texts = self._generate(self._tiled(chunk), repeat=k, do_sample=False, temperature=None,
                                           top_p=None, top_k=None, logits_processor=LogitsProcessorList([nucleus]),
                                           max_new_tokens=max_new_tokens, use_cache=True)
                for mine, block in zip(out, self._blocks(texts, len(chunk) * k)):
                    mine.extend(block[i * k:(i + 1) * k] for i in range(len(chunk)))
        return out

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int, add_special_tokens: bool = True,
                 desc: str = "generating") -> list[str]:
        """Greedy continuation (new text only) of every prompt, in order, ``batch_size`` prompts per call."""
        out: list[str] = []
        with self._inference("sample"):
            for start in self._bar(range(0, len(prompts), self.batch_size), desc):
                chunk = [tokens(self.tokenizer, p, special=add_special_tokens) for p in prompts[start:start + self.batch_size]]
                out.extend(self._generate(chunk, max_new_tokens=max_new_tokens, do_sample=False))
        return out
