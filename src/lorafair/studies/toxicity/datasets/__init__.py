"""The toxicity study's datasets: HONEST, RedditBias and BOLD prompts (and BOLD Wikipedia text), and the
detox training data (``counterfactual``, ``nontoxic-corpus``). Importing this package registers them."""

from lorafair.registry import import_submodules

import_submodules(__name__)
