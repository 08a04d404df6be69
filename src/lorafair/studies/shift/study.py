"""The ``shift`` study: how much of the fine-tuning data's distribution shift a variant learned.

Per variant v, on held-out shift data (next-token posteriors at every scored position):

- ``kl_v_base`` = KL(P_v‖P_base) (how far v moved), ``kl_base_v`` its reverse; ``kl_full_v`` =
  KL(P_full‖P_v) (how far v still is from full fine-tuning), ``kl_v_full`` its reverse;
  ``js_v_base``, ``js_full_v`` the Jensen–Shannon divergences; ``kl_full_base`` for reference.
  Each as mean per token (value; CI from a bootstrap over sequences of Σ KL / Σ tokens), ``*_seq``
  mean per sequence, and ``*_q50``/``*_q90``/``*_q99`` token quantiles;
- per-sequence items (``StudyResult.items["sequences"]``: each divergence summed over the sequence's
  scored tokens, and the token count), from which the runner computes the paired
  ``capture_kl_full_v`` = 1 − KL(P_full‖P_v)/KL(P_full‖P_base) (``kl_full_v`` is the study's target
  metric; token-weighted, paired bootstrap over sequences; undefined when full did not move away);
- logit lens per layer (``shift_layers.json``): KL(lens_ℓ(v)‖P_v), KL(lens_ℓ(v)‖lens_ℓ(base)),
  and with ``toxic_vocab`` the probability mass on toxic tokens of v and of base;
- spectrum of ΔW_full (``RUN/spectrum.json``, once per run) and, for LoRA-family variants, principal
  angles between the variant's own update W_eff − W_base (PiSSA's residual and DoRA's magnitude
  included) and ΔW_full's top-r subspace (``subspace_overlap``);
- intruder dimensions (Shuttleworth et al. 2024; PEFT's detection, :mod:`.intruders`): per linear
  module, the top-k singular vectors of the variant's weight whose best |cosine| with every singular
  vector of the base weight is below ε; ``intruders`` counted in total, per module type
  (group ``type:<type>``) and per layer (group ``layer:<i>``), details in ``shift_intruders.json``.

Base posteriors come from ``ctx.base_view()`` (the PEFT model with adapters disabled) when the
variant is a PEFT model whose base weights are the base model's (not PiSSA), else from
``ctx.reference("base")``. Reference posteriors (base, full) are computed once per batch and kept
across variants of the same run in memory, within ``reference_cache_mb``.
"""

from __future__ import annotations

import functools

import contextlib
import time
from functools import partial
from typing import Callable, Literal, Optional

import numpy as np
import torch
from pydantic import Field

from lorafair.data.registry import DataSpec
from lorafair.errors import UserError
from lorafair.atomic import atomic_write_json
from lorafair.methods import adapters_off_is_base, peft_methods
from lorafair.stats.bootstrap import bootstrap_mean_ci, ratio_ci
from lorafair.stats.paired import ratio_of_sums
from lorafair.studies.base import EvalContext, ItemSet, MetricRow, MetricSpec, StudyConfig, StudyResult, register_study
from lorafair.studies.shift import divergence as dv
from lorafair.studies.shift import intruders as intr
from lorafair.studies.shift.lens_collect import LensCollector
from lorafair.studies.shift.posteriors import ReferenceCache, fingerprint, forward_batch, make_batches, rows_logp
from lorafair.studies.shift.spectrum import (
    DEFAULT_RANKS, LowRankDelta, linear_weights, lora_deltas, lora_subspace_angles, paired_weights, split_name,
    summarise_spectra, update_spectrum,
)
from lorafair.studies.shift.toxic_vocab import load_words, token_ids_for_words

# (P role, Q role) -> {divergence kind: metric}; KL(P‖Q) is "kl", KL(Q‖P) "reverse_kl", JS(P, Q) "js".
ROLE_PAIRS = {
    ("v", "base"): {"kl": "kl_v_base", "reverse_kl": "kl_base_v", "js": "js_v_base"},
    ("full", "v"): {"kl": "kl_full_v", "reverse_kl": "kl_v_full", "js": "js_full_v"},
    ("full", "base"): {"kl": "kl_full_base"},
}
OPTIONAL_KINDS = ("reverse_kl", "js")
SPECTRUM_FILE = "spectrum.json"  # the run-level artifact: ΔW_full's spectrum, once per run (ctx.run_file)
UNIT = "sequences"  # the item set: one item per held-out sequence (id = its record index)
TOKENS = "tokens"  # item column: scored tokens of the sequence; every divergence column is its sum over them


def _per_token(name: str):
    """Token-weighted mean of a divergence from the per-sequence items: Σ_seq Σ_tokens D / Σ_seq tokens."""
    return ratio_of_sums(name, TOKENS)


_DOCS = {
    "kl_v_base": "KL(P_v‖P_base) per token: how far the variant moved from base",
    "kl_base_v": "KL(P_base‖P_v) per token",
    "kl_full_v": "KL(P_full‖P_v) per token: how far the variant still is from full fine-tuning (base: KL(P_full‖P_base); full: 0)",
    "kl_v_full": "KL(P_v‖P_full) per token",
    "js_v_base": "Jensen–Shannon divergence of P_v and P_base per token (nats)",
    "js_full_v": "Jensen–Shannon divergence of P_full and P_v per token (nats)",
    "kl_full_base": "KL(P_full‖P_base) per token: the shift full fine-tuning learned (the same for every variant)",
}


class ShiftConfig(StudyConfig):
    data: Optional[DataSpec] = Field(
        default=None,
        description="Held-out shift data. Default: the records the runner passes as held-out, else the run's "
        "`data.eval`, else the held-out split of `data.train` (same split as training).",
    )
    max_sequences: int = Field(default=64, gt=0, description="Use at most this many records.")
    max_length: int = Field(default=128, gt=1, description="Truncate each sequence to this many tokens.")
    batch_size: int = Field(default=8, gt=0, description="Sequences per forward pass.")
    divergences: list[Literal["reverse_kl", "js"]] = Field(
        default_factory=lambda: list(OPTIONAL_KINDS),
        description="Besides KL(P_v‖P_base), KL(P_full‖P_v) and KL(P_full‖P_base) (always): the reverse "
        "directions (`reverse_kl`: kl_base_v, kl_v_full) and Jensen–Shannon (`js`: js_v_base, js_full_v).",
    )
    dtype: str = Field(default="float32", pattern="^(float32|float64)$", description="Accumulation dtype of log-softmax and KL.")
    logit_lens: bool = Field(default=True, description="Per-layer logit lens (KL to the final layer and to base).")
    lens_max_sequences: int = Field(default=64, gt=0, description="Logit lens on the first this many sequences.")
    lens_positions: Literal["first", "all"] = Field(
        default="first",
        description="Positions read through the lens: `first` = the first scored position of each sequence (for "
        "prompt/completion records the next-token posterior right after the prompt, where the paper read the mass on "
        "toxic tokens); `all` = every scored position (each costs one unembedding per layer, ~L/5 forward passes "
        "for a 135M model with a 49k vocabulary).",
    )
    toxic_vocab: Optional[str] = Field(default=None, description="'better-profanity' or a word-list file: report probability mass on those tokens per layer.")
    spectrum: bool = Field(default=True, description="Spectrum of ΔW_full (RUN/spectrum.json) and LoRA principal angles.")
    ranks: list[int] = Field(default_factory=lambda: list(DEFAULT_RANKS), description="Ranks at which to report the energy of ΔW_full.")
    intruders: bool = Field(
        default=True,
        description="Count intruder dimensions (Shuttleworth et al. 2024, PEFT's detection) per linear module: one SVD "
        "per changed module per variant, plus the base's once per run (kept in memory: about the size of the base's "
        "linear weights in float32).",
    )
    intruder_top_k: int = Field(default=intr.DEFAULT_TOP_K, gt=0, description="Singular vectors of the variant's weight examined per module (largest first).")
    intruder_epsilon: float = Field(default=intr.DEFAULT_EPSILON, gt=0, le=1,
                                    description="A singular vector is an intruder when its best |cosine| with the base's singular vectors is below this.")
    quantiles: list[float] = Field(default_factory=lambda: [0.5, 0.9, 0.99], description="Token quantiles reported per divergence.")
    n_boot: int = Field(default=1000, gt=0, description="Bootstrap resamples for intervals.")
    reference_cache_mb: int = Field(
        default=4096, ge=0,
        description="Memory for reference (base, full) log-posteriors kept across the variants of a run: about "
        "2 × sequences × tokens × vocabulary × 4 bytes (64 × 128 tokens × 49k vocabulary: 3.2 GB), then the base's "
        "logit-lens log-posteriors. What does not fit is recomputed for every variant (one more forward pass of base "
        "and of full).",
    )


class _Clock:
    """Wall seconds per part of the study (synchronising an accelerator first), for ``info``."""

    def __init__(self, device) -> None:
        self.device = torch.device(device)
        self.parts: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        self._sync()
        t = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.parts[name] = self.parts.get(name, 0.0) + time.perf_counter() - t

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def rounded(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.parts.items()}


def _is_peft(model) -> bool:
    return callable(getattr(model, "get_base_model", None)) and hasattr(model, "peft_config")


@register_study("shift")
class ShiftStudy:
    """Posterior KL to base and full, KL capture ratio, logit lens, update spectrum."""

    Config = ShiftConfig
    needs_references = ("base", "full")
    headline = ("kl_full_v", "kl_v_base")
    # kl_full_v is the target: its paired capture (capture_kl_full_v = 1 − KL(full‖v)/KL(full‖base)) is
    # computed by the runner from the per-sequence items; every other number is reported only.
    metric_specs = (
        MetricSpec("kl_full_v", "target", "lower", unit=UNIT, stat=_per_token("kl_full_v"), doc=_DOCS["kl_full_v"]),
        *(MetricSpec(m, "diagnostic", "lower" if m.endswith(("_full", "full_v")) else "none", unit=UNIT,
                     stat=_per_token(m), doc=_DOCS[m])
          for m in ("kl_v_base", "kl_base_v", "kl_v_full", "js_v_base", "js_full_v", "kl_full_base")),
        MetricSpec("subspace_overlap", "diagnostic", "higher",
                   doc="mean over adapted modules of the mean cos² of the principal angles between the top-r "
                   "subspaces of the variant's ΔW and of ΔW_full (1 = same subspace)"),
        MetricSpec("subspace_angle_deg", "diagnostic", "lower", doc="mean principal angle (degrees)"),
        MetricSpec("intruders", "diagnostic", "lower",
                   doc="intruder dimensions: among the top-k singular vectors of each linear module's weight, those whose "
                   "best |cosine| with the base weight's singular vectors is below ε (Shuttleworth et al. 2024); total, "
                   "and per module type (group type:<type>) and layer (group layer:<i>)"),
        MetricSpec("intruder_modules", "diagnostic", "lower", doc="linear modules with at least one intruder dimension"),
    )

    def __init__(self) -> None:
        # shared by every variant of the run (the runner makes one study per run): ΔW_full's decomposition
        # per (run, seed), the token ids of a toxic word list per source, and the reference posteriors
        # (base, full, KL(full‖base), the base's lens) keyed by run and seed, within a memory budget
        self._spectrum_cache: dict = {}
        self._toxic_ids: dict = {}
        self._base_svd: dict = {}  # (run, seed) -> {module: U of W_base} for intruder dimensions
        self.reference_cache = ReferenceCache(0)

    # ---- data -------------------------------------------------------------------------------
    def _records(self, ctx: EvalContext, cfg: ShiftConfig) -> tuple[list[dict], str]:
        from lorafair.data.load import load_records, split_holdout
        from lorafair.data.registry import DataContext

        def dctx(field):
            return DataContext(seed=ctx.seed, log=ctx.log, progress=False, field_name=field)

        if cfg.data is not None:
            rows, origin = load_records(cfg.data, dctx("studies.shift.data")), "studies.shift.data"
        elif ctx.heldout_data:
            rows, origin = list(ctx.heldout_data), "runner held-out records"
        else:
            data = getattr(ctx.config, "data", None)
            if data is None:
                raise UserError("studies.shift.data", None, "a data spec (the run config has no data)")
            if getattr(data, "eval", None) is not None:
                rows, origin = load_records(data.eval, dctx("data.eval")), "data.eval"
            else:
                rows = load_records(data.train, dctx("data.train"))
                rows, origin = split_holdout(rows, data.holdout, ctx.seed)[1], "held-out split of data.train"
        return rows[: cfg.max_sequences], origin

    # ---- models -----------------------------------------------------------------------------
    def _base_source(self, ctx: EvalContext):
        """(context manager factory, model) giving base posteriors, and a label for info."""
        if ctx.variant.method == "base":
            return contextlib.nullcontext, ctx.model, "variant itself"
        if ctx.base_view is not None and _is_peft(ctx.model) and adapters_off_is_base(ctx.variant.method):
            return ctx.base_view, ctx.model, "adapters disabled"
        if ctx.reference is None:
            raise UserError.plain("shift study: no base model available (ctx.reference is not set)")
        return contextlib.nullcontext, ctx.reference("base"), "reference model"

    def _full_model(self, ctx: EvalContext):
        if ctx.variant.name == "full":  # the reference itself (another full checkpoint, e.g. an external one, is not)
            return ctx.model
        if ctx.reference is None:
            raise UserError.plain("shift study: no full fine-tuned model available (ctx.reference is not set)")
        return ctx.reference("full")

    # ---- evaluate ---------------------------------------------------------------------------
    def evaluate(self, ctx: EvalContext) -> StudyResult:
        cfg: ShiftConfig = ctx.study_config if isinstance(ctx.study_config, ShiftConfig) else ShiftConfig.model_validate(ctx.study_config or {})
        t0 = time.perf_counter()
        dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
        records, origin = self._records(ctx, cfg)
        batches = make_batches(ctx.tokenizer, records, max_length=cfg.max_length, batch_size=cfg.batch_size)
        fp = fingerprint(records, cfg.max_length, cfg.batch_size)
        self.reference_cache.resize(cfg.reference_cache_mb * 2**20)
        base_cm, base_model, base_how = self._base_source(ctx)
        full_model = self._full_model(ctx)
        run_key = (str(ctx.run_dir), ctx.seed, fp)

        tox_ids = None
        if cfg.toxic_vocab:
            ids = self._toxic_token_ids(ctx.tokenizer, cfg.toxic_vocab)
            tox_ids = torch.tensor(ids, dtype=torch.long) if ids else None
            if tox_ids is None:
                ctx.log.warning("shift: toxic_vocab %s maps to no token of this tokenizer", cfg.toxic_vocab)

        clock = _Clock(ctx.device)
        skipped_before = self.reference_cache.skipped
        kinds = ("kl",) + tuple(k for k in OPTIONAL_KINDS if k in cfg.divergences)
        names = [m for pair in ROLE_PAIRS.values() for k, m in pair.items() if k in kinds]
        sums: dict[str, list] = {k: [] for k in names}  # per-sequence sums
        counts: list[np.ndarray] = []
        tokens: dict[str, list] = {k: [] for k in names}
        lens = LensCollector(max_sequences=cfg.lens_max_sequences, positions=cfg.lens_positions) if cfg.logit_lens else None
        refs = {"base": (base_cm, base_model), "full": (contextlib.nullcontext, full_model)}

        from tqdm import tqdm

        for bi, batch in enumerate(tqdm(batches, desc=f"shift {ctx.variant.name}", disable=not ctx.progress)):
            do_lens = lens is not None and lens.wants
            with clock("variant_forward"):
                out_v = forward_batch(ctx.model, batch, ctx.device, hidden=do_lens)
            T = batch.input_ids.shape[1]
            idx = batch.score_mask.flatten().nonzero().squeeze(1).to(out_v.logits.device)  # scored positions, row-major
            seq = (idx // T).cpu()
            with clock("divergences"):
                lp = {"v": rows_logp(out_v.logits, idx, dtype)}
            with clock("references"):
                for role, (cm, model) in refs.items():
                    if ctx.variant.method == role:
                        lp[role] = lp["v"]
                    else:
                        lp[role] = self._ref_logp((role,) + run_key + (bi,), run_key, cm, model, batch, idx, ctx, dtype)
            fb_key = ("kl_full_base",) + run_key + (bi,)
            fb = self.reference_cache.get(fb_key)
            with clock("divergences"):
                pairs = ROLE_PAIRS if fb is None else {k: v for k, v in ROLE_PAIRS.items() if k != ("full", "base")}
                vals = dv.role_divergences(lp, pairs, kinds, rows=dv.chunk_rows(lp["v"].shape[-1], lp["v"].device))
            if fb is None:
                self.reference_cache.put(fb_key, vals["kl_full_base"], group=run_key)
            else:
                vals["kl_full_base"] = fb
            for name, v in vals.items():
                v64 = v.detach().to(torch.float64).cpu()
                sums[name].append(torch.zeros(len(batch.index), dtype=torch.float64).index_add_(0, seq, v64).numpy())
                tokens[name].append(v64.numpy())
            counts.append(batch.score_mask.sum(-1).numpy().astype(np.float64))
            if do_lens:
                lens.add(batch, out_v, lp["v"], idx, seq)
            del out_v, lp, vals
        if self.reference_cache.skipped > skipped_before:
            ctx.log.warning("shift: reference posteriors do not all fit in reference_cache_mb=%d; the rest is recomputed "
                            "for every variant (raise it, or lower max_sequences/max_length)", cfg.reference_cache_mb)

        n_tok = np.concatenate(counts)
        ids = [str(i) for b in batches for i in b.index]
        columns = {TOKENS: n_tok}
        rows: list[MetricRow] = []
        seq_means = {}
        for name in names:
            s = np.concatenate(sums[name])
            columns[name] = s
            seq_means[name] = s / n_tok
            tv = np.concatenate(tokens[name])
            _, lo, hi = ratio_ci(s, n_tok, n_boot=cfg.n_boot, seed=ctx.seed)
            point = float(_per_token(name)({name: s[None, :], TOKENS: n_tok[None, :]})[0])  # the items' statistic
            rows.append(MetricRow(name, point, lo, hi, int(len(s))))
            p2, l2, h2 = bootstrap_mean_ci(seq_means[name], n_boot=cfg.n_boot, seed=ctx.seed)
            rows.append(MetricRow(f"{name}_seq", p2, l2, h2, int(len(s))))
            for q in cfg.quantiles:
                rows.append(MetricRow(f"{name}_q{round(q * 100):d}", float(np.quantile(tv, q)), None, None, int(tv.size)))

        layers = {"layers": []}
        if lens is not None:
            with clock("logit_lens"):
                layers = lens.compute(ctx.model, base_cm, base_model, ctx.device, dtype=dtype, tox_ids=tox_ids,
                                      cache=self.reference_cache,
                                      cache_key=("lens_base",) + run_key + (cfg.lens_max_sequences, cfg.lens_positions), cache_group=run_key)
        info = {
            "data": origin, "n_sequences": int(len(n_tok)), "n_tokens": int(n_tok.sum()),
            "max_length": cfg.max_length, "base_posteriors": base_how, "dtype": cfg.dtype,
            "ci": f"95% percentile bootstrap over sequences, {cfg.n_boot} resamples, seed {ctx.seed}",
            "reference_cache": {"hits": self.reference_cache.hits, "misses": self.reference_cache.misses, "bytes": self.reference_cache.used},
        }
        shift_layers = {"variant": ctx.variant.name, **layers}
        if tox_ids is not None:
            shift_layers["toxic_vocab"] = {"source": cfg.toxic_vocab, "n_token_ids": int(tox_ids.numel())}
        # the variant's own update per adapted module, computed once for the spectrum and the intruders
        deltas = functools.cache(lambda: lora_deltas(ctx.model, self._base_weights_model(ctx)) if _is_peft(ctx.model) else {})
        if cfg.spectrum:
            with clock("spectrum"):
                rows += self._spectrum(ctx, cfg, full_model, shift_layers, info, deltas)
        if cfg.intruders:
            with clock("intruders"):
                rows += self._intruders(ctx, cfg, info, deltas)
        atomic_write_json(ctx.out_dir / "shift_layers.json", shift_layers)
        info["seconds"] = round(time.perf_counter() - t0, 3)
        info["seconds_by_part"] = clock.rounded()
        return StudyResult(rows, info, items={UNIT: ItemSet(ids, columns)})

    # ---- intruder dimensions -----------------------------------------------------------------
    def _intruders(self, ctx: EvalContext, cfg: ShiftConfig, info: dict, deltas: Callable[[], dict]) -> list[MetricRow]:
        """Intruder dimensions of the variant's weights against the base's, per linear module (lm_head
        excluded). Modules the variant did not change have none (their singular vectors are the base's)
        and cost nothing; the base's left singular vectors are computed once per run and seed."""
        base_model = self._base_weights_model(ctx)
        wb = linear_weights(base_model)
        # module -> the variant's weight W' (module layout), formed one module at a time below
        changed: dict[str, Callable[[], torch.Tensor]] = {}
        if ctx.variant.method != "base":
            with torch.no_grad():
                if _is_peft(ctx.model):
                    for name, (delta, _r, _floor) in deltas().items():
                        if name in wb and not (isinstance(delta, LowRankDelta) and delta.is_zero):
                            changed[name] = partial(_plus, wb[name], delta)
                else:
                    for name, w0, w1 in paired_weights(base_model, ctx.model):
                        if not torch.equal(w0, w1.to(w0.device)):
                            changed[name] = (lambda w=w1: w)
        key = (str(ctx.run_dir), ctx.seed)
        if key not in self._base_svd:
            self._base_svd.clear()
            self._base_svd[key] = {}
        u_cache = self._base_svd[key]
        modules = []
        with torch.no_grad():
            for name in wb:
                mtype, layer = split_name(name)
                if name not in changed:
                    modules.append(intr.ModuleIntruders(name, mtype, layer, 0, [], []))
                    continue
                if name not in u_cache:
                    u_cache[name] = intr.left_singular_vectors(wb[name])
                cos = intr.best_cosines(u_cache[name], changed[name]().to(u_cache[name].device), cfg.intruder_top_k)
                idx = torch.where(cos < cfg.intruder_epsilon)[0].tolist()
                modules.append(intr.ModuleIntruders(name, mtype, layer, len(idx), idx, [float(c) for c in cos]))
        summary = intr.summarise(modules)
        atomic_write_json(ctx.out_dir / "shift_intruders.json", {
            "variant": ctx.variant.name, "top_k": cfg.intruder_top_k, "epsilon": cfg.intruder_epsilon,
            "what": "per linear module: top-k left singular vectors of the variant's weight whose best |cosine| with "
                    "the base weight's left singular vectors is below epsilon (PEFT's intruder detection)",
            "summary": summary, "modules": [m.as_dict() for m in modules if m.name in changed],
        })
        info["intruders"] = {"top_k": cfg.intruder_top_k, "epsilon": cfg.intruder_epsilon, "modules": summary["modules"],
                             "changed_modules": len(changed), "file": "shift_intruders.json"}
        n_type: dict[str, int] = {}
        n_layer: dict[str, int] = {}
        for m in modules:
            n_type[m.module_type] = n_type.get(m.module_type, 0) + 1
            lk = "none" if m.layer is None else str(m.layer)
            n_layer[lk] = n_layer.get(lk, 0) + 1
        rows = [MetricRow("intruders", float(summary["total"]), None, None, summary["modules"]),
                MetricRow("intruder_modules", float(summary["modules_with_intruders"]), None, None, summary["modules"])]
        rows += [MetricRow("intruders", float(c), None, None, n_type[t], group=f"type:{t}") for t, c in summary["by_type"].items()]
        rows += [MetricRow("intruders", float(c), None, None, n_layer[l], group=f"layer:{l}") for l, c in summary["by_layer"].items()]
        return rows

    def _base_weights_model(self, ctx: EvalContext):
        """The model whose linear weights are the base's: the variant itself for base, the base reference, or a
        PEFT model's unmerged base layers (not for PiSSA, whose base layers hold the residual W − B·A)."""
        if ctx.variant.method == "base":
            return ctx.model
        if ctx.reference is not None:
            return ctx.reference("base")
        if _is_peft(ctx.model) and adapters_off_is_base(ctx.variant.method):
            return ctx.model
        raise UserError.plain("shift study: the spectrum and intruder dimensions need the base model (ctx.reference is not set)")

    def _toxic_token_ids(self, tokenizer, source: str) -> list[int]:
        """Token ids of a toxic word list for a tokenizer, computed once per run (every variant shares the tokenizer)."""
        hit = self._toxic_ids.get(source)
        if hit is not None and hit[0] is tokenizer:
            return hit[1]
        ids = token_ids_for_words(tokenizer, load_words(source))
        self._toxic_ids.clear()
        self._toxic_ids[source] = (tokenizer, ids)
        return ids

    def _ref_logp(self, key, group, cm, model, batch, idx, ctx, dtype) -> torch.Tensor:
        """Log-posteriors (scored positions × vocabulary) of a reference model, from the cache or computed."""
        hit = self.reference_cache.get(key)
        if hit is not None and hit.dtype == dtype:
            return hit
        with cm():
            out = forward_batch(model, batch, ctx.device)
        logp = rows_logp(out.logits, idx, dtype)
        self.reference_cache.put(key, logp, group=group)
        return logp

    # ---- spectrum ---------------------------------------------------------------------------
    def _spectrum(self, ctx, cfg, full_model, shift_layers, info, deltas) -> list[MetricRow]:
        """ΔW_full spectrum (once per run and seed) and, for LoRA-family variants, principal angles.
        Base weights: the base reference model; without one, the PEFT model's unmerged base layers
        (not for PiSSA, whose base layers hold the residual W − B·A)."""
        rows: list[MetricRow] = []
        key = (str(ctx.run_dir), ctx.seed)
        dec = self._spectrum_cache.get(key)
        base_weights = self._base_weights_model(ctx)
        # the variant's own update W_eff − W_base per adapted module (PiSSA's residual, DoRA's magnitude included)
        lora = deltas()
        keep = max([d[1] for d in lora.values()] + [_ladder_max_rank(ctx.config)])
        if dec is None or (keep and (not dec.left or next(iter(dec.left.values())).shape[1] < keep)):
            dec = update_spectrum(base_weights, full_model, cfg.ranks, keep_left=keep)
            self._spectrum_cache.clear()
            self._spectrum_cache[key] = dec
        path = ctx.run_file(SPECTRUM_FILE)
        if not path.exists():
            atomic_write_json(path, {
                "what": "singular values of ΔW = W_full − W_base per linear module",
                "ranks": list(cfg.ranks),
                "summary": summarise_spectra(dec.spectra),
                "modules": [s.as_dict() for s in dec.spectra],
            })
        info["spectrum"] = str(path)
        if lora:
            angles = lora_subspace_angles(lora, dec.left)
            shift_layers["principal_angles"] = angles
            zero = sorted(n for n, d in lora.items() if isinstance(d[0], LowRankDelta) and d[0].is_zero)
            no_full = sorted(n for n in lora if n not in dec.left)
            info["principal_angles"] = {"modules": len(lora), "with_angles": len(angles), "zero_update": len(zero),
                                        "zero_full_update": len(no_full)}
            if angles:
                ov = [a["overlap"] for a in angles]
                ang = [a["mean_angle_deg"] for a in angles]
                rows.append(MetricRow("subspace_overlap", float(np.mean(ov)), None, None, len(ov)))
                rows.append(MetricRow("subspace_angle_deg", float(np.mean(ang)), None, None, len(ang)))
            else:
                why = ("undefined: the variant's update W_eff − W_base is zero in every adapted module" if len(zero) == len(lora)
                       else "undefined: no adapted module has both a non-zero update and a non-zero ΔW_full")
                for m in ("subspace_overlap", "subspace_angle_deg"):
                    rows.append(MetricRow(m, float("nan"), None, None, 0, note=why))
        return rows


def _plus(w: torch.Tensor, delta) -> torch.Tensor:
    """W + ΔW in float32 (ΔW a :class:`LowRankDelta` or a dense tensor, module layout)."""
    d = delta.dense() if isinstance(delta, LowRankDelta) else delta
    return w.float() + d.to(device=w.device, dtype=torch.float32)


def _ladder_max_rank(config) -> int:
    """The largest PEFT rank of the run, so ΔW_full's singular vectors are computed once for all variants."""
    variants = getattr(config, "variants", None)
    ranks = [r for m in peft_methods() for r in getattr(getattr(variants, m, None), "ranks", []) or []]
    return max(ranks, default=0)
