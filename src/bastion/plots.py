"""Figures for the self-contained HTML reports (A/B experiments, sweeps): matplotlib
without a display, each figure inlined as a base64 PNG."""

from __future__ import annotations

import base64
import importlib
import io
from typing import Any


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed); imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def inline_png(fig: Any) -> str:
    """The figure as an <img> whose source is the PNG itself; the figure is closed."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    pyplot().close(fig)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="plot" src="data:image/png;base64,{encoded}">'


def concise_dates(ax: Any) -> None:
    """Date ticks on the x axis labelled as briefly as their span allows."""
    dates: Any = importlib.import_module("matplotlib.dates")  # untyped: used through Any
    locator = dates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator))
