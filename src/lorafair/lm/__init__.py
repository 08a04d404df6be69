"""One LM engine for every study: tokenisation (:mod:`.encode`), padding and batching (:mod:`.batching`),
the forward pass and log-probabilities (:mod:`.engine`). Imports nothing from studies, data or adapt."""

from lorafair.lm.batching import PositionBatch, batches, pad, position_batches, position_ids
from lorafair.lm.encode import (IGNORE, config_prefix_id, encode_pair, encode_record, encode_records, learnable, max_positions,
                                prefix_token_id, tokens, with_prefix)
from lorafair.lm.engine import LM, Scored, fork_rng, model_device, rows_logp, rows_of, sample_seed

__all__ = [
    "IGNORE", "LM", "PositionBatch", "Scored", "batches", "config_prefix_id", "encode_pair", "encode_record", "encode_records", "fork_rng", "learnable", "max_positions",
    "model_device", "pad", "position_batches", "position_ids", "prefix_token_id", "rows_logp", "rows_of", "sample_seed",
    "tokens", "with_prefix",
]
