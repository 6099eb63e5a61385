"""Figures, one module per family (see docs/design.md for why this is a package)."""

import matplotlib

matplotlib.use("Agg")
