"""Command-line tools: `cxr-age-data`, `cxr-age-train`, `cxr-age-saliency` (also `python -m cxr_age`)."""
