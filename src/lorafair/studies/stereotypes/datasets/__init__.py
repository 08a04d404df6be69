"""The stereotypes study's training datasets: counterfactual data augmentation (``cda``) and
anti-stereotypical sentences (``antistereotype``). Importing this package registers them."""

from lorafair.registry import import_submodules

import_submodules(__name__)
