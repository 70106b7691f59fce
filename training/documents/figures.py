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


def reliability_curve(rows: dict[str, list], path: str | Path, threshold: float) -> None:
    """Per method: the share of right orientations against the mean confidence, per bin of
    confidence (metrics.reliability), points sized by the images in them; the diagonal is a
    calibrated confidence, the dotted line the threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=110)
    ax.plot([0.25, 1.0], [0.25, 1.0], color="grey", linewidth=0.8, linestyle="--")
    ax.axvline(threshold, color="grey", linewidth=0.6, linestyle=":")
    for name, bins in rows.items():
        if not bins:
            continue
        conf = [b[3] for b in bins]
        right = [b[4] for b in bins]
        sizes = [8 + 60 * np.sqrt(b[2] / max(c[2] for c in bins)) for b in bins]
        ax.plot(conf, right, linewidth=1.2, label=name)
        ax.scatter(conf, right, s=sizes)
    ax.set_xlabel("orientation confidence (mean of the bin)")
    ax.set_ylabel("share of right orientations")
    ax.set_xlim(0.2, 1.02)
    ax.set_ylim(0.0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
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
