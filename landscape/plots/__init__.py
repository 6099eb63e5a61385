"""Figures, one module per family (see docs/design.md for why this is a package)."""

import matplotlib

matplotlib.use("Agg")


def save_figure(fig, path, dpi: int = 130, close: bool = True):
    """Save ``fig`` atomically (temporary file, then rename) in the format of ``path``'s suffix, and
    close it unless ``close=False``. Every figure of the library goes through here."""
    from pathlib import Path

    import matplotlib.pyplot as plt

    from ..checkpoint import atomic_target
    path = Path(path)
    try:
        with atomic_target(path, suffix=path.suffix or ".png") as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=(path.suffix[1:] or "png"))
    finally:
        if close:
            plt.close(fig)
    return path
