"""Handing a trained model over, as a MONAI bundle or a torchxrayvision weights file is handed over: a run
exported as a self-contained folder (`export`) with its model card (`card`) and a manifest of SHA-256 hashes
(`manifest`), read back by `Bundle` (`bundle`) from a path or, downloaded once into a cache and verified, from
a URL (`fetch`)."""
