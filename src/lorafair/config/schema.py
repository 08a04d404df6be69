"""The run configuration: one validated object that flows through every stage.

Unknown keys are errors everywhere (``extra="forbid"``). Every field is documented; ``lorafair
run --help`` and README show examples. Study sections are validated by each study's own
``Config`` (see :mod:`lorafair.studies.base`).
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from lorafair.data.registry import DataSpec
from lorafair.methods import Method, get_method, peft_methods

# the registered PEFT methods (lorafair.methods), in the ladder's order, as the schema is built: a method
# registered by a plug-in must be registered before this module is imported
PEFT_METHODS = peft_methods()


class Strict(BaseModel):
    # unknown keys are errors; NaN and ±inf are refused in every float field
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


MAX_SEED = 2**63 - 1  # torch.manual_seed's range
NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$"


class ModelConfig(Strict):
    source: str = Field(
        default="embedded:smollm2-135m-instruct",
        description="Model source: 'embedded:smollm2-135m-instruct', 'embedded:gemma3-270m', 'hf:<hub id or local folder>', or 'tiny:<arch>[-size]'.",
    )
    dtype: Literal["float32", "bfloat16", "float16"] = Field(default="float32", description="Weights dtype when loading.")
    device: str = Field(default="auto", description="'auto' (CUDA if available, else CPU), 'cpu', 'cuda', 'cuda:1', 'mps'.")
    trust_remote_code: bool = Field(default=False, description="Allow code from the model repository to run (off by default).")
    allow_pickle: bool = Field(default=False, description="Allow loading .bin (pickle) weights; safetensors only by default.")


class MethodConfig(Strict):
    """One PEFT method of the ladder (a :mod:`lorafair.methods` entry: lora, dora, rslora, pissa …)."""

    ranks: list[int] = Field(default_factory=list, description="Ranks to train; one variant per rank. Empty: method not used.")
    alpha: Union[float, str] = Field(
        default="2r",
        description="LoRA alpha: a number (fixed for every rank) or 'Kr' meaning K times the rank (e.g. '2r', '1r').",
    )
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="LoRA dropout.")
    target_modules: Union[list[str], Literal["all-linear"]] = Field(
        default="all-linear", description="Module names to adapt, or 'all-linear' (every linear layer of the blocks, not the LM head)."
    )
    lr: float = Field(default=1e-3, gt=0, description="Learning rate for this method (used unless variants.lr_grid gives a grid).")

    @field_validator("ranks")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        for r in v:
            if r <= 0:
                raise ValueError(f"rank {r} is not a positive integer")
        if len(set(v)) != len(v):
            raise ValueError("ranks contain duplicates")
        return v

    @field_validator("alpha")
    @classmethod
    def _alpha(cls, v):
        if isinstance(v, str):
            s = v.strip()
            if not s.endswith("r"):
                raise ValueError("alpha must be a number or 'Kr' (K times the rank), e.g. '2r'")
            try:
                k = float(s[:-1] or 1)
            except ValueError:
                raise ValueError("alpha must be a number or 'Kr' (K times the rank), e.g. '2r'") from None
            if not math.isfinite(k) or k <= 0:
                raise ValueError("alpha multiple K of 'Kr' must be a positive finite number, e.g. '2r'")
        elif v <= 0:
            raise ValueError("alpha must be positive")
        return v

    def alpha_for(self, rank: int) -> float:
        if isinstance(self.alpha, str):
            return float(self.alpha.strip()[:-1] or 1) * rank
        return float(self.alpha)


class FullConfig(Strict):
    enabled: bool = Field(default=True, description="Train the full fine-tuning variant.")
    lr: float = Field(default=5e-5, gt=0, description="Learning rate for full fine-tuning (smaller than LoRA's).")


class ExternalConfig(Strict):
    """A variant made elsewhere, evaluated like a trained one and never trained: a PEFT adapter folder or a full
    checkpoint (``hf:<folder or hub id>``). See :mod:`lorafair.adapt.external`."""

    name: str = Field(pattern=NAME_RE, description="The variant's name in the run (its folder <name>-s<seed>). Name an "
                      "adapter <method>-r<rank> (e.g. lora-r8) to put it on the rank ladder and in the recommendation; "
                      "with role: full the variant is the run's `full` reference (named full in the run).")
    source: str = Field(min_length=1, description="A PEFT adapter folder (adapter_config.json + adapter_model.safetensors), "
                        "or hf:<folder or hub id> of a full checkpoint of the base model's architecture (safetensors).")
    method: Optional[str] = Field(default=None, description="For an adapter: its PEFT method (lora, dora, rslora, pissa); "
                                  "default: read from adapter_config.json. For a full checkpoint: full (the default).")
    rank: Optional[int] = Field(default=None, gt=0, description="For an adapter: its rank; default: r of adapter_config.json.")
    role: Literal["variant", "full"] = Field(default="variant", description="'full': this full checkpoint is the run's "
                                             "full reference (capture ratios are measured against it; "
                                             "variants.full.enabled must then be false).")

    @field_validator("method")
    @classmethod
    def _method(cls, v):
        if v is not None and v not in ("full",) + PEFT_METHODS:
            raise ValueError(f"unknown method {v!r}; allowed: full, {', '.join(PEFT_METHODS)}")
        return v


class _VariantsBase(Strict):
    base: bool = Field(default=True, description="Evaluate the untrained base model.")
    full: FullConfig = Field(default_factory=FullConfig)

    @field_validator("lr_grid", check_fields=False)
    @classmethod
    def _grid(cls, v):
        if v is None:
            return v
        for k, lrs in v.items():
            if k not in ("full",) + PEFT_METHODS:
                raise ValueError(f"unknown method {k!r} in lr_grid; allowed: full, {', '.join(PEFT_METHODS)}")
            if not lrs or any(not math.isfinite(x) or x <= 0 for x in lrs):
                raise ValueError(f"lr_grid.{k} must be a non-empty list of positive finite numbers")
        return v

    @model_validator(mode="after")
    def _external(self):
        """With external variants a recipe trains only what it names: ``full`` and every method's ranks default to
        off (a section the recipe writes is kept); names are unique and not those of trained variants; a full
        reference given as ``role: full`` replaces the trained one."""
        ext = getattr(self, "external", None) or []
        if not ext:
            return self
        if "full" not in self.model_fields_set:
            self.full = FullConfig(enabled=False)
        for m in PEFT_METHODS:
            if m not in self.model_fields_set:
                setattr(self, m, MethodConfig(ranks=[]))
        fulls = [i for i, e in enumerate(ext) if e.role == "full"]
        if len(fulls) > 1:
            raise ValueError(f"at most one external variant has role 'full' (entries {fulls} have it)")
        if fulls and self.full.enabled:
            raise ValueError(f"external[{fulls[0]}] ({ext[fulls[0]].name}) has role 'full' while variants.full.enabled "
                             "is true: set variants.full.enabled: false (the run's full reference is then the external one)")
        planned = {"base", "full"} | {f"{m}-r{r}" for m in PEFT_METHODS for r in getattr(self, m).ranks}
        seen: set[str] = set()
        for i, e in enumerate(ext):
            if e.role == "full":
                if e.method not in (None, "full"):
                    raise ValueError(f"external[{i}] ({e.name}) has role 'full': its method is full, not {e.method!r}")
                continue
            if e.name in planned or e.name in seen:
                raise ValueError(f"external[{i}] has name {e.name!r}, which another variant of the run has; pick another")
            seen.add(e.name)
        return self


def _method_field(method: Method):
    """The ``variants.<method>`` field: a :class:`MethodConfig`, its ranks defaulting to the method's."""
    ranks = list(method.default_ranks)
    factory = (lambda: MethodConfig(ranks=list(ranks))) if ranks else MethodConfig
    return (MethodConfig, Field(default_factory=factory, description=method.description or None))


# base, full, one field per registered PEFT method (registration order), lr_grid: the fields (and the order
# of config.yaml) follow the method registry (:mod:`lorafair.methods`), so a new method is one registry entry
VariantsConfig = create_model(
    "VariantsConfig",
    __base__=_VariantsBase,
    __module__=__name__,
    __doc__="The variant ladder: base, full fine-tuning and every PEFT method at its ranks.",
    **{name: _method_field(get_method(name)) for name in PEFT_METHODS},
    lr_grid=(Optional[dict[str, list[float]]], Field(
        default=None,
        description=f"Optional learning-rate grid per method (keys: full, {', '.join(PEFT_METHODS)}). Each variant is "
        "trained with every lr and the one with the lowest validation loss is kept.",
    )),
    external=(list[ExternalConfig], Field(
        default_factory=list,
        description="Variants made elsewhere (PEFT adapter folders, hf: full checkpoints), evaluated like trained ones "
        "and never trained. With external variants, full and every method's ranks are off unless the recipe sets them.",
    )),
)


class TrainConfig(Strict):
    max_steps: Optional[int] = Field(default=100, gt=0, description="Optimiser steps per variant (the budget). Set null to use epochs.")
    epochs: Optional[float] = Field(default=None, gt=0, description="Epochs over the training data (used when max_steps is null).")
    batch_size: int = Field(default=8, gt=0, description="Sequences per micro-batch (per process).")
    grad_accum: int = Field(default=1, gt=0, description="Gradient accumulation steps per optimiser step.")
    max_length: int = Field(default=128, gt=1, description="Tokens per training sequence (longer ones are truncated).")
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1, description="Fraction of steps of linear warm-up.")
    schedule: Literal["cosine", "linear", "constant"] = Field(default="cosine", description="Learning-rate schedule after warm-up.")
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay.")
    grad_clip: Optional[float] = Field(default=1.0, gt=0, description="Max gradient norm (null: no clipping).")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        default="auto", description="'auto': bf16 autocast (fp32 master weights) on GPUs that support it and on CPUs with "
        "native bf16 (AVX512-BF16 or AMX), fp32 elsewhere; 'bf16' forces bf16 autocast (CPU too); 'fp32' never autocasts "
        "(the exact-reproduction path). train.json records the precision used."
    )
    group_by_length: bool = Field(
        default=True, description="Batches of records of similar length (less padding, as the HF Trainer's "
        "group_by_length): each epoch a seeded shuffle, records sorted by length within mega-batches of up to 50 "
        "batches, then the batch order shuffled (seeded); the same batches for every variant. false: the plain seeded "
        "shuffle (the batch order of lorafair 0.1 runs)."
    )
    loss_positions: Literal["supervised", "all"] = Field(
        default="supervised", description="'supervised': logits and cross-entropy only at positions whose next token is "
        "a label (the LM head skips prompt and padding positions; the same loss up to float rounding); 'all': the "
        "model's own loss over full logits (the exact-reproduction path)."
    )
    eval_batch_size: int = Field(default=16, gt=0, description="Batch size for held-out loss.")
    # how the run is made safe, not what it computes: left out of config.yaml and of every fingerprint
    # (exclude=True), so turning it on, off or changing it never invalidates a run directory or its cache
    checkpoint_every: Optional[int] = Field(
        default=50, gt=0, exclude=True,
        description="Save the resumable training state (trainable weights — a LoRA adapter, not the base — optimizer, "
        "scheduler, RNG, data position) every N optimiser steps into RUN/<variant>-s<seed>/checkpoint/, so a killed "
        "run resumes inside a variant with the same numbers; removed once the variant is saved. null: off.")

    @model_validator(mode="after")
    def _budget(self):
        # a step budget is needed: max_steps, or epochs when max_steps is null (a UserError passes through
        # pydantic unchanged, so the message names the field the user wrote rather than the `train` section)
        if self.max_steps is None and self.epochs is None:
            from lorafair.errors import UserError

            raise UserError("train.max_steps", None, message="train.max_steps=None: expected a positive number of "
                            "optimiser steps, or train.epochs (a positive number) when train.max_steps is null")
        return self


class DataConfig(Strict):
    train: DataSpec = Field(description="The shift (fine-tuning) data.")
    eval: Optional[DataSpec] = Field(default=None, description="Held-out data for validation loss; default: a split of `train`.")
    holdout: float = Field(default=0.1, gt=0, lt=1, description="Fraction of `train` held out when `eval` is not given.")


class StartConfig(Strict):
    """Optional first stage: full fine-tune the loaded model on ``data`` to make the starting (``base``) model
    of the ladder, e.g. a deliberately toxic or biased model that the variants then correct."""

    data: DataSpec
    max_steps: int = Field(default=100, gt=0)
    lr: float = Field(default=5e-5, gt=0)


class EvalConfig(Strict):
    precision: Literal["auto", "bf16", "fp32"] = Field(
        default="auto", description="Precision of the evaluations: 'auto' runs under bf16 autocast (fp32 weights) only "
        "the operations each study declares safe (samples and decisions, where agreement with fp32 was measured; "
        "docs/performance.md) and only where bf16 is native (GPUs with bf16, CPUs with AVX512-BF16 or AMX), fp32 "
        "elsewhere; 'bf16' runs every scoring and sampling of every study under bf16 autocast; 'fp32' none "
        "(the exact-reproduction path). Each results/<study>.json records the precision used.")
    mixed_adapters: Literal["auto", "on", "off"] = Field(
        default="auto", description="Evaluate the base model and the LoRA variants of a seed together (LoRA, rsLoRA, "
        "their strategy variants; not DoRA, PiSSA, full fine-tuning or external variants): every batch holds each "
        "variant's rows, each row through its own adapter (PEFT adapter_names=), for the studies whose requests do "
        "not depend on the variant (stereotypes, toxicity, classification, heldout, forgetting). Each variant's "
        "numbers are its own up to float rounding. 'auto': on a GPU, where one variant's batches leave it idle; not "
        "on a CPU, where it removes no work (docs/performance.md). Each results/<study>.json records it.")
    mixed_adapters_per_pass: int = Field(
        default=8, ge=1, description="The most variants whose rows share one forward pass (each brings a whole "
        "batch of the study's batch_size): lower it where memory is short.")

    @field_validator("mixed_adapters", mode="before")
    @classmethod
    def _on_off(cls, v: Any) -> Any:
        """YAML reads a bare on/off as true/false: take those as "on"/"off"."""
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v


class OutputConfig(Strict):
    dir: Optional[str] = Field(default=None, description="Run directory (default runs/<recipe name>); --out overrides.")
    save_full_weights: bool = Field(
        default=False,
        description="Also export the full fine-tuned model as a save_pretrained folder (RUN/full-s<seed>/model, loadable "
        "as hf:<folder>, e.g. for `lorafair spectrum`). Adapters are always saved; the full variant's raw weights "
        "(model.safetensors) are always kept, as resume and the shift study need them.")
    report: bool = Field(default=True, description="Write report.html/report.md at the end of the run.")


class RunConfig(Strict):
    name: str = Field(default="run", pattern=NAME_RE,
                      description="Recipe name; also the default run directory runs/<name>, so a plain name: letters, "
                      "digits, '.', '_', '+', '-' (no path separators), at most 100 characters.")
    description: str = Field(default="", description="One line shown by `lorafair recipes`.")
    model: ModelConfig = Field(default_factory=ModelConfig)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, description="Seeds; every variant is trained and evaluated once per seed.")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        for s in v:
            if not 0 <= s <= MAX_SEED:
                raise ValueError(f"seed {s} is outside 0 … 2**63 - 1")
        if len(set(v)) != len(v):
            raise ValueError("seeds contain duplicates")
        return v
    variants: VariantsConfig = Field(default_factory=VariantsConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    data: Optional[DataConfig] = Field(default=None, description="The shift data the variants train on (and the held-out "
                                       "records of the heldout and shift studies). Only a run that trains nothing (every "
                                       "variant external) may leave it out.")
    start: Optional[StartConfig] = Field(default=None, description=StartConfig.__doc__)
    studies: dict[str, Any] = Field(
        default_factory=lambda: {"heldout": {}},
        description="Studies to run, name -> its fields (see `lorafair studies`). 'heldout' (validation loss) is always cheap.",
    )
    eval: EvalConfig = Field(default_factory=EvalConfig, description="How the studies are evaluated (precision).")
    strategies: dict[str, Any] = Field(
        default_factory=dict,
        description="Fairness-promoting adaptation strategies, name -> its fields (docs/strategies.md): each is crossed "
        "with every trained method and rank of the ladder (lora-r8+cfreg, full+select). A free instance name with "
        "`use: <strategy>` holds another configuration of a strategy (cfreg_lo: {use: cfreg, lam: 0.1}); a list lam "
        "gives one instance per λ (cfreg_lam0p1 …). Empty: plain fine-tuning only.",
    )
    output: OutputConfig = Field(default_factory=OutputConfig)

    @model_validator(mode="after")
    def _studies(self):
        from lorafair.studies.loader import validate_studies

        self.studies = validate_studies(self.studies)
        if self.data is None:
            from lorafair.errors import UserError

            v = self.variants
            trains = [n for n in ("full",) if v.full.enabled] + [f"{m}-r{r}" for m in PEFT_METHODS for r in getattr(v, m).ranks]
            if self.start is not None or trains:
                what = "the start stage" if self.start is not None else f"variants {', '.join(trains[:3])}{' …' if len(trains) > 3 else ''}"
                raise UserError("data", None, message=f"data: required field is missing ({what} train on it; only a run "
                                "whose variants are all external may leave it out)")
            if "heldout" in self.studies:
                raise UserError("studies.heldout", None, message="studies.heldout: expected a data section (the held-out "
                                "loss is measured on data.eval or a split of data.train); remove the study or add data")
            for name, scfg in self.studies.items():  # a study whose own data defaults to the run's (shift)
                if "data" in type(scfg).model_fields and getattr(scfg, "data") is None:
                    raise UserError(f"studies.{name}.data", None, message=f"studies.{name}.data: expected a data spec "
                                    "(the run has no data section to default to)")
        return self

    @model_validator(mode="after")
    def _strategies(self):
        from lorafair.strategies import validate_strategies

        # an instance name is a variant-name suffix (lora-r8+<name>): never a method's name, nor "plain" (the report's)
        self.strategies = validate_strategies(self.strategies, reserved=("base", "full", *peft_methods(), "plain"))
        v = self.variants
        trained = (["full"] if v.full.enabled else []) + [f"{m}-r{r}" for m in PEFT_METHODS for r in getattr(v, m).ranks]
        crossed = {f"{t}+{s}" for t in trained for s in self.strategies}  # run.layout.variant_name(…, strategy)
        for i, e in enumerate(v.external):
            if e.name in crossed:
                from lorafair.errors import UserError

                raise UserError(f"variants.external[{i}].name", e.name, "a name that no strategy variant of the run "
                                f"has ({e.name} is {e.name.split('+')[0]} trained with strategies.{e.name.split('+')[-1]})")
        return self

    def study_configs(self) -> dict[str, Any]:
        return self.studies
