"""Figures, drawn without pyplot (no backend chosen, no global state) and written as PNGs atomically."""
