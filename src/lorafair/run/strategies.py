"""What a strategy variant trains on: the records a data strategy chose (saved once per strategy and seed in the
run directory, ``data/train-s<seed>+<strategy>.jsonl``, with a fingerprint) and the loss term of an objective
strategy, encoded for the training loop (:mod:`lorafair.strategies`)."""

from __future__ import annotations

from typing import Any, Optional

from lorafair.adapt.tokenize import encode_records
from lorafair.atomic import atomic_write_json, atomic_write_jsonl, read_json
from lorafair.data.files import read_jsonl
from lorafair.run.layout import RunLayout, fingerprint
from lorafair.strategies import StrategyContext, build_strategy


class StrategyInputs:
    """Per run: ``inputs(variant, seed, rows, enc)`` -> (encoded training records, objective or None) of a
    variant; plain variants get ``enc`` unchanged. Selected records are built once per (strategy, seed)."""

    def __init__(self, cfg, layout: RunLayout, tok, device, log, is_main: bool = True, base_model=None):
        self.cfg, self.layout, self.tok, self.device, self.log, self.is_main = cfg, layout, tok, device, log, is_main
        self.base_model = base_model  # () -> (model, tokenizer), for strategies that ask the base model
        self._memo: dict[tuple[str, int], tuple[list[dict], Any]] = {}

    def inputs(self, variant, seed: int, rows: list[dict], enc: list[dict]) -> tuple[list[dict], Optional[Any]]:
        name = getattr(variant, "strategy", "")
        if not name:
            return enc, None
        key = (name, seed)
        if key not in self._memo:
            self._memo[key] = self._build(name, seed, rows, enc)
        return self._memo[key]

    def _build(self, name: str, seed: int, rows: list[dict], enc: list[dict]):
        scfg = self.cfg.strategies[name]
        strategy = build_strategy(name, scfg)
        ml = self.cfg.train.max_length
        ctx = StrategyContext(seed=seed, tokenizer=self.tok, max_length=ml, device=self.device, log=self.log,
                              field=strategy.field, base_model=self.base_model)
        if strategy.selects():
            rows = self._selected(strategy, seed, rows, ctx)
            enc = encode_records(rows, self.tok, ml)
        objective = strategy.objective(ctx)
        if objective is not None:
            enc = objective.encode(rows, self.tok, ml)
        if not enc:
            from lorafair.errors import UserError

            raise UserError(strategy.field, name, "a strategy that leaves records with at least one token to learn from")
        return enc, objective

    def _selected(self, strategy, seed: int, rows: list[dict], ctx: StrategyContext) -> list[dict]:
        lay = self.layout
        path, marker = lay.strategy_data(strategy.name, seed), lay.strategy_marker(strategy.name, seed)
        dump = self.cfg.model_dump(mode="json")
        fp = fingerprint([{k: dump[k] for k in ("model", "data", "start")}, seed, strategy.name,
                           strategy.config.model_dump(mode="json")])
        if path.exists() and marker.exists():
            try:
                if read_json(marker).get("fingerprint") == fp:
                    return read_jsonl(str(path))
            except (OSError, ValueError):
                pass
        chosen = strategy.select(rows, ctx)
        if self.is_main:
            atomic_write_jsonl(path, chosen)
            atomic_write_json(marker, {"fingerprint": fp, "strategy": strategy.name, "records": len(chosen),
                                       "from_records": len(rows)} | getattr(strategy, "summary", {}))
        self.log.info("strategy %s (seed %d): %d training records chosen of %d", strategy.name, seed, len(chosen), len(rows))
        return chosen
