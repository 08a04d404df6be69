"""A byte-level tokenizer built in code (no download): 256 byte tokens + specials.

Used by ``tiny:`` models, so tests and throughput benchmarks need nothing from a hub.
"""

from __future__ import annotations

from functools import lru_cache

SPECIALS = ["<pad>", "<s>", "</s>"]


@lru_cache(maxsize=1)
def byte_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_to_unicode = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for ch in sorted(byte_to_unicode):
        vocab[ch] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None, fuse_unk=False))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="</s>", model_max_length=4096
    )
    return tok
