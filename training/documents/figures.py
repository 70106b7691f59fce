"""Figures for `stn evaluate`: sorted error curves and a before/after contact sheet."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def error_curves(errors: dict[str, list[float]], path: str | Path, mode: str) -> None:
    """One line per method: its errors sorted from best to worst, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for name, values in errors.items():
        e = np.sort(np.asarray(values, dtype=np.float64))
        if e.size == 0:
            continue
        share = (np.arange(e.size) + 1) / e.size * 100
        ax.plot(share, np.maximum(e, 1e-3), label=name, linewidth=1.6)
    if mode == "rotation":
        ax.set_ylabel("angle error (degrees, log)")
        for level in (0.1, 0.5, 45.0):
            ax.axhline(level, color="grey", linewidth=0.6, linestyle=":")
    else:
        what = "grid point" if mode == "dewarp" else "corner"
        ax.set_ylabel(f"mean {what} error (% of page diagonal, log)")
        ax.axhline(1.0, color="grey", linewidth=0.6, linestyle=":")
    ax.set_yscale("log")
    ax.set_xlabel("share of pages (%), sorted by error")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def contact_sheet(pairs, path: str | Path, side: int = 220) -> None:
    """Rows of (before, after) thumbnails, two pairs per row, labelled with the sample name."""
    if not pairs:
        return
    tiles = []
    for before, after, name in pairs:
        cells = []
        for image in (before, after):
            cell = np.full((side + 18, side, 3), 255, np.uint8)
            if image is not None:
                h, w = image.shape[:2]
                y, x = 18 + (side - h) // 2, (side - w) // 2
                cell[y : y + h, x : x + w] = image[:side, :side]
            cells.append(cell)
        tile = np.hstack([cells[0], np.full((side + 18, 6, 3), 200, np.uint8), cells[1]])
        cv2.putText(
            tile, name[:40], (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA
        )
        tiles.append(np.pad(tile, ((4, 4), (4, 4), (0, 0)), constant_values=255))
    if len(tiles) % 2:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.hstack(tiles[i : i + 2]) for i in range(0, len(tiles), 2)]
    sheet = np.vstack(rows)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
