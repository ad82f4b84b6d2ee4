"""Command-line tools (`cxr-age-data`, `-train`, `-evaluate`, `-saliency`, `-predict`, `-report`; also `python -m
cxr_age`): arguments in, library calls, results and one-line errors out."""
