"""Finding the fonts the page generator draws with.

More fonts make the synthetic pages more varied; the generator works with whatever is installed.
The recommended set comes from Debian packages (`scripts/setup.sh --fonts`, docs/documents.md):

    apt-get install -y fonts-dejavu-core fonts-dejavu-extra fonts-liberation fonts-freefont-ttf \
        fonts-urw-base35 fonts-crosextra-carlito fonts-crosextra-caladea \
        fonts-ipafont-mincho fonts-ipafont-gothic fonts-lohit-deva fonts-hosny-amiri fonts-kacst \
        fonts-blankenburg fonts-gotico-antiqua

(Japanese, Devanagari and Arabic pages; two blackletter faces, used like any Latin font).
STN_FONT_DIRS (os.pathsep-separated) adds folders to search first.

With none of them the generator falls back to OpenCV's built-in Hershey fonts (Writer, below).
STN_FONT_DIRS replaces the system folders with others (see font_dirs).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "~/.local/share/fonts")
FONT_SUFFIXES = (".ttf", ".otf", ".ttc")  # of a .ttc collection, its first font
# Fonts that are symbols or scripts no page is written in.
SKIP_WORDS = ("symbol", "math", "dingbat", "z003", "d050000l", "extralight")

# A few letters per script: a font serves a script when it draws all of them.
SCRIPT_SAMPLES = {
    "latin": "AaQgéß",
    "cyrillic": "ДжЯщ",
    "greek": "ΩλΣψ",
    "hebrew": "אשת",
    "arabic": "بشع",
    "devanagari": "कखगज",
    "cjk": "日本語あア",
    "music": "\U0001d11e",  # the G clef, for music pages (special_pages.py)
}


@dataclass(frozen=True)
class Font:
    path: str
    bold: bool
    italic: bool
    mono: bool
    scripts: tuple[str, ...] = field(default=("latin",))


def font_dirs() -> list[Path]:
    """The folders searched: STN_FONT_DIRS (os.pathsep-separated) when set, in place of the
    system's, so that a fixed set of fonts gives the same pages on every machine (the tests pin
    theirs this way); otherwise the usual system and user font folders."""
    pinned = [Path(p).expanduser() for p in os.environ.get("STN_FONT_DIRS", "").split(os.pathsep)]
    pinned = [p for p in pinned if str(p) not in ("", ".")]
    for folder in pinned:
        if not folder.is_dir():
            raise ValueError(f"STN_FONT_DIRS: {folder} is not a folder")
    return pinned or [Path(d).expanduser() for d in FONT_DIRS]


@functools.lru_cache(maxsize=4)
def find_fonts(dirs: tuple[str, ...] | None = None) -> tuple[Font, ...]:
    """Every usable TrueType/OpenType font, sorted by path so a seed gives the same pages."""
    roots = [Path(d) for d in dirs] if dirs else font_dirs()
    paths: set[Path] = set()
    for root in roots:
        if root.is_dir():
            paths.update(p for p in root.rglob("*") if p.suffix.lower() in FONT_SUFFIXES)
    fonts = []
    for path in sorted(paths):
        name = path.name.lower()
        if any(word in name for word in SKIP_WORDS):
            continue
        scripts = _scripts(str(path))
        if "latin" not in scripts:
            continue
        fonts.append(
            Font(
                path=str(path),
                bold=any(w in name for w in ("bold", "demi", "bd")),
                italic=any(w in name for w in ("italic", "oblique", "ita")),
                mono="mono" in name,
                scripts=scripts,
            )
        )
    return tuple(fonts)


def _scripts(path: str) -> tuple[str, ...]:
    """Scripts the font really draws: a missing glyph renders as the same box as a private-use
    code point, which no text font defines."""
    try:
        font = ImageFont.truetype(path, 24)
        missing = _glyph(font, "\ue000")
    except OSError:
        return ()
    found = []
    for script, sample in SCRIPT_SAMPLES.items():
        try:
            if all(_glyph(font, ch) != missing for ch in sample):
                found.append(script)
        except (OSError, ValueError):
            continue
    return tuple(found)


def _glyph(font, ch: str) -> bytes:
    image = Image.new("L", (48, 48), 0)
    ImageDraw.Draw(image).text((8, 8), ch, font=font, fill=255)
    return image.tobytes()


class Writer:
    """Draws text in one font and size, with PIL (TrueType) or OpenCV's Hershey fonts."""

    def __init__(self, canvas: Image.Image, font: Font | None, size: float, rtl: bool):
        self.canvas, self.draw, self.rtl = canvas, ImageDraw.Draw(canvas), rtl
        self.size = max(6, int(size))
        self.font: ImageFont.FreeTypeFont | None
        if font is not None:
            self.font = ImageFont.truetype(font.path, self.size)
            top, bottom = self.font.getbbox("Ag")[1], self.font.getbbox("Ag")[3]
            self.height = max(1, bottom - top)
            self.offset = top
        else:  # Hershey: scale 1.0 is about 22 px tall
            self.font, self.scale = None, self.size / 30.0
            self.height, self.offset = int(self.size * 0.75), 0

    def width(self, text: str) -> int:
        if self.font is not None:
            return int(self.font.getlength(text))
        (w, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, self.scale, 1)
        return w

    def text(self, x: float, y: float, text: str, ink: int = 0) -> None:
        if self.font is not None:
            self.draw.text((x, y - self.offset), text, font=self.font, fill=ink)
            return
        # Hershey fonts are ASCII only; other scripts become placeholder letters.
        ascii_text = "".join(c if ord(c) < 128 else "x" for c in text)
        array = np.array(self.canvas)  # a writable copy: PIL's own buffer is read-only
        cv2.putText(
            array,
            ascii_text,
            (int(x), int(y + self.height)),
            cv2.FONT_HERSHEY_SIMPLEX,
            self.scale,
            ink,
            max(1, int(self.scale * 2)),
            cv2.LINE_AA,
        )
        self.canvas.paste(Image.fromarray(array))
