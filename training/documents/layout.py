"""Rendering one synthetic base page: layout and ink, upright, black on white.

A page is a stack of blocks (headings, paragraphs, lists, tables, forms, figures, receipts lines) in
one to three columns, with margins, running headers and page numbers. Paper colour, texture and
scan artefacts are added later, on the fly (see degrade.py), so one base page serves many samples.
Everything is drawn from one seed, so a seed always gives the same page.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw

from stn_align.training.documents.fonts import Font, Writer, find_fonts
from stn_align.training.documents.text import TextSource, pick_script

PAGE_KINDS = {
    "article": 0.4,
    "book": 0.14,
    "letter": 0.1,
    "form": 0.1,
    "table": 0.1,
    "receipt": 0.08,
    "landscape": 0.08,
}


class PageRenderer:
    """Lays out one page. Block methods take the cursor y and return the next y."""

    def __init__(
        self,
        seed: int,
        fonts: tuple[Font, ...] | None = None,
        kinds: dict[str, float] | None = None,
        scripts: dict[str, float] | None = None,
    ):
        """`kinds` and `scripts`: their shares (default PAGE_KINDS and text.SCRIPT_WEIGHTS; the
        varied bank of special_pages.py passes its own)."""
        self.rng = rng = np.random.default_rng(seed)
        fonts = find_fonts() if fonts is None else fonts
        self.script = pick_script(rng, scripts)
        usable = [f for f in fonts if self.script in f.scripts] or [
            f for f in fonts if "latin" in f.scripts
        ]
        if self.script != "latin" and not any(self.script in f.scripts for f in fonts):
            self.script = "latin"
        self.text_source = TextSource(rng, self.script)
        kinds = PAGE_KINDS if kinds is None else kinds
        names = list(kinds)
        p = np.array([kinds[n] for n in names])
        self.kind = str(rng.choice(names, p=p / p.sum()))
        self.fonts = usable
        self.body_font = self._pick_font(bold=False)
        self.head_font = self._pick_font(bold=rng.random() < 0.7)
        self.mono_font = self._pick_font(mono=True)

        long_side = int(rng.integers(1000, 1400))
        aspect = {"receipt": rng.uniform(0.28, 0.5), "landscape": rng.uniform(1.25, 1.5)}.get(
            self.kind, rng.uniform(0.68, 0.8)
        )  # width / height
        if aspect < 1:
            self.h, self.w = long_side, int(long_side * aspect)
        else:
            self.w, self.h = long_side, int(long_side / aspect)
        self.canvas = Image.new("L", (self.w, self.h), 255)
        ref = min(self.w, self.h) if self.kind != "receipt" else self.w * 2.2
        self.body_size = ref * rng.uniform(0.013, 0.03)
        self.leading = rng.uniform(1.15, 1.7)
        margin = rng.uniform(0.04, 0.14)
        self.left, self.right = (
            int(self.w * margin),
            int(self.w * (1 - margin * rng.uniform(0.7, 1.3))),
        )
        self.top, self.bottom = (
            int(self.h * rng.uniform(0.04, 0.12)),
            int(self.h * rng.uniform(0.86, 0.96)),
        )

    def _pick_font(self, bold: bool = False, mono: bool = False) -> Font | None:
        if not self.fonts:
            return None
        pool = [f for f in self.fonts if f.mono == mono and f.bold == bold and not f.italic]
        pool = pool or self.fonts
        return pool[int(self.rng.integers(len(pool)))]

    def writer(self, font: Font | None, scale: float = 1.0) -> Writer:
        return Writer(self.canvas, font, self.body_size * scale, self.text_source.rtl)

    # ---- page ------------------------------------------------------------------------------

    def render(self) -> np.ndarray:
        rng, kind = self.rng, self.kind
        if rng.random() < 0.5 and kind not in ("receipt",):
            self._running_header()
        if kind == "receipt":
            self._receipt()
        else:
            columns = 1
            if kind in ("article", "landscape"):
                columns = int(rng.choice([1, 2, 3], p=[0.5, 0.38, 0.12]))
            y = self.top
            if kind in ("article", "letter", "form", "table", "landscape") and rng.random() < 0.8:
                y = self._heading(self.left, self.right, y, level=0)
            if kind == "letter":
                y = self._letter_head(y)
            self._columns(columns, y)
        if rng.random() < 0.7 and kind != "receipt":
            self._page_number()
        return np.asarray(self.canvas, dtype=np.uint8).copy()

    def _columns(self, n: int, y0: int) -> None:
        gap = int(self.w * self.rng.uniform(0.02, 0.05))
        width = (self.right - self.left - gap * (n - 1)) / n
        for i in range(n):
            x0 = int(self.left + i * (width + gap))
            self._fill_column(x0, int(x0 + width), y0)

    def _fill_column(self, x0: int, x1: int, y: int) -> None:
        blocks = {
            "article": ["paragraph"] * 6 + ["heading", "list", "figure", "table"],
            "book": ["paragraph"] * 9 + ["heading"],
            "letter": ["paragraph"] * 5 + ["list"],
            "form": ["form"] * 4 + ["paragraph", "heading", "checkboxes"],
            "table": ["table"] * 3 + ["paragraph", "heading"],
            "landscape": ["paragraph"] * 3 + ["list", "figure", "table", "heading"],
        }[self.kind]
        # Pages are sometimes short: the last page of a chapter, a one-paragraph note.
        stop = (
            self.bottom
            if self.rng.random() < 0.8
            else int(y + (self.bottom - y) * self.rng.uniform(0.2, 0.8))
        )
        while y < stop:
            block = blocks[int(self.rng.integers(len(blocks)))]
            y = getattr(self, "_" + block)(x0, x1, y) + int(
                self.body_size * self.rng.uniform(0.3, 1.2)
            )

    # ---- blocks ----------------------------------------------------------------------------

    def _lines(self, x0, x1, y, words, writer, align, indent=0, limit=None) -> int:
        """Flow words into lines between x0 and x1; align is left|justify|center|right."""
        space = writer.width(" ") or max(2, writer.size // 4)
        step = int(writer.height * self.leading) + 1
        limit = limit or self.bottom
        line: list[str] = []
        first = True
        i = 0
        while i <= len(words):
            start = x0 + (indent if first else 0)
            fits = i < len(words) and (
                not line or writer.width(" ".join([*line, words[i]])) <= x1 - start
            )
            if fits:
                line.append(words[i])
                i += 1
                continue
            if not line:
                break
            if y + writer.height > limit:
                return y
            last = i >= len(words)
            self._draw_line(
                start,
                x1,
                y,
                line,
                writer,
                "left" if (last and align == "justify") else align,
                space,
            )
            y += step
            line, first = [], False
            if last:
                break
        return y

    def _draw_line(self, x0, x1, y, words, writer, align, space) -> None:
        if writer.rtl:
            align = {"left": "right", "justify": "right"}.get(align, align)
        text = " ".join(words)
        width = writer.width(text)
        if align == "justify" and len(words) > 1 and not writer.rtl:
            gaps = (x1 - x0 - sum(writer.width(w) for w in words)) / (len(words) - 1)
            x = float(x0)
            for word in words:
                writer.text(x, y, word)
                x += writer.width(word) + gaps
            return
        align = "left" if align == "justify" else align
        x = {"left": x0, "center": (x0 + x1 - width) / 2, "right": x1 - width}[align]
        writer.text(x, y, text)

    def _paragraph(self, x0, x1, y) -> int:
        rng = self.rng
        italic = rng.random() < 0.06
        font = self.body_font
        if italic:
            pool = [f for f in self.fonts if f.italic] or self.fonts
            font = pool[int(rng.integers(len(pool)))] if pool else None
        writer = self.writer(font)
        words = self.text_source.sentence(int(rng.integers(12, 90)))
        align = str(rng.choice(["left", "justify", "justify", "center"], p=[0.35, 0.3, 0.3, 0.05]))
        indent = int(writer.size * rng.uniform(1, 3)) if rng.random() < 0.4 else 0
        return self._lines(x0, x1, y, words, writer, align, indent)

    def _heading(self, x0, x1, y, level: int | None = None) -> int:
        rng = self.rng
        level = int(rng.integers(1, 3)) if level is None else level
        scale = {0: rng.uniform(1.5, 2.6), 1: rng.uniform(1.15, 1.6), 2: rng.uniform(1.0, 1.2)}[
            level
        ]
        writer = self.writer(self.head_font, scale)
        words = self.text_source.title(int(rng.integers(1, 8))).split()
        align = "center" if (level == 0 and rng.random() < 0.5) else "left"
        y = self._lines(x0, x1, y, words, writer, align)
        if rng.random() < 0.2:
            self._rule(x0, x1, y)
            y += 4
        return y + int(writer.height * 0.4)

    def _list(self, x0, x1, y) -> int:
        writer = self.writer(self.body_font)
        numbered = self.rng.random() < 0.4
        indent = int(writer.size * 1.5)
        for k in range(int(self.rng.integers(2, 7))):
            if y + writer.height > self.bottom:
                break
            mark = f"{k + 1}." if numbered else str(self.rng.choice(["•", "–", "*", "▪"]))
            writer.text(x0 if not writer.rtl else x1 - writer.width(mark), y, mark)
            words = self.text_source.sentence(int(self.rng.integers(3, 25)))
            y = (
                self._lines(x0 + indent, x1, y, words, writer, "left")
                if not writer.rtl
                else (self._lines(x0, x1 - indent, y, words, writer, "right"))
            )
        return y

    def _table(self, x0, x1, y) -> int:
        rng = self.rng
        writer = self.writer(self.body_font, rng.uniform(0.8, 1.0))
        cols, rows = int(rng.integers(2, 6)), int(rng.integers(3, 14))
        row_h = int(writer.height * rng.uniform(1.5, 2.2))
        widths = rng.uniform(0.6, 1.6, cols)
        edges = x0 + np.concatenate([[0], np.cumsum(widths / widths.sum() * (x1 - x0))]).astype(int)
        grid = rng.random() < 0.5
        draw = ImageDraw.Draw(self.canvas)
        top = y
        for r in range(rows):
            if y + row_h > self.bottom:
                break
            writer_r = self.writer(self.head_font, 0.9) if r == 0 else writer
            for c in range(cols):
                cell = self.text_source.word() if (c == 0 or r == 0) else self.text_source.number()
                while writer_r.width(cell) > edges[c + 1] - edges[c] - 6 and len(cell) > 1:
                    cell = cell[:-1]
                right = c > 0 and r > 0
                x = edges[c + 1] - 4 - writer_r.width(cell) if right else edges[c] + 4
                writer_r.text(x, y + (row_h - writer_r.height) // 2, cell)
            if grid or r == 0 or r == rows - 1:
                draw.line([(x0, y + row_h), (x1, y + row_h)], fill=0, width=1)
            y += row_h
        if grid:
            for e in edges:
                draw.line([(int(e), top), (int(e), y)], fill=0, width=1)
            draw.line([(x0, top), (x1, top)], fill=0, width=1)
        return y

    def _figure(self, x0, x1, y) -> int:
        rng = self.rng
        height = int((x1 - x0) * rng.uniform(0.3, 0.8))
        if y + height > self.bottom:
            return self.bottom
        draw = ImageDraw.Draw(self.canvas)
        fx0, fx1 = (
            x0 + int((x1 - x0) * rng.uniform(0, 0.15)),
            x1 - int((x1 - x0) * rng.uniform(0, 0.15)),
        )
        kind = rng.integers(3)
        if kind == 0:  # photo-like: smooth random grey field
            small = rng.uniform(40, 220, (4, 4)).astype(np.float32)
            photo = cv2.resize(small, (fx1 - fx0, height), interpolation=cv2.INTER_CUBIC)
            self.canvas.paste(Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)), (fx0, y))
        elif kind == 1:  # bar chart
            draw.line([(fx0, y + height), (fx1, y + height)], fill=0, width=2)
            draw.line([(fx0, y), (fx0, y + height)], fill=0, width=2)
            n = int(rng.integers(3, 12))
            bw = (fx1 - fx0) / (n * 1.5)
            for k in range(n):
                bx = fx0 + bw * (0.5 + 1.5 * k)
                top = y + height * rng.uniform(0.05, 0.9)
                draw.rectangle([bx, top, bx + bw, y + height], fill=int(rng.integers(0, 160)))
        else:  # line plot
            draw.rectangle([fx0, y, fx1, y + height], outline=0, width=1)
            xs = np.linspace(fx0, fx1, 30)
            ys = y + height * (
                0.5 + 0.4 * np.sin(xs / (fx1 - fx0) * rng.uniform(3, 12) + rng.uniform(0, 6))
            )
            draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=0, width=2)
        y += height + int(self.body_size * 0.5)
        writer = self.writer(self.body_font, 0.85)
        caption = self.text_source.sentence(int(rng.integers(3, 15)))
        return self._lines(x0, x1, y, caption, writer, "center" if rng.random() < 0.5 else "left")

    def _form(self, x0, x1, y) -> int:
        writer = self.writer(self.body_font)
        draw = ImageDraw.Draw(self.canvas)
        for _ in range(int(self.rng.integers(2, 6))):
            if y + writer.height * 2 > self.bottom:
                break
            label = self.text_source.title(int(self.rng.integers(1, 3))) + ":"
            writer.text(x0, y, label)
            lx = x0 + writer.width(label) + writer.size
            base = y + writer.height + 2
            if self.rng.random() < 0.5:
                draw.line([(lx, base), (x1, base)], fill=0, width=1)
            else:
                draw.rectangle([lx, y - 3, x1, base + 2], outline=0, width=1)
            y += int(writer.height * self.leading * 1.6)
        return y

    def _checkboxes(self, x0, x1, y) -> int:
        writer = self.writer(self.body_font)
        draw = ImageDraw.Draw(self.canvas)
        for _ in range(int(self.rng.integers(2, 5))):
            if y + writer.height > self.bottom:
                break
            box = writer.height
            draw.rectangle([x0, y, x0 + box, y + box], outline=0, width=1)
            if self.rng.random() < 0.4:
                draw.line([(x0, y), (x0 + box, y + box)], fill=0, width=2)
            writer.text(
                x0 + box * 2, y, " ".join(self.text_source.sentence(int(self.rng.integers(2, 8))))
            )
            y += int(writer.height * self.leading * 1.3)
        return y

    def _rule(self, x0, x1, y) -> None:
        ImageDraw.Draw(self.canvas).line(
            [(x0, y), (x1, y)], fill=0, width=int(self.rng.integers(1, 3))
        )

    def _letter_head(self, y) -> int:
        writer = self.writer(self.body_font)
        step = int(writer.height * self.leading)
        for _ in range(int(self.rng.integers(2, 5))):
            writer.text(self.left, y, self.text_source.title(int(self.rng.integers(1, 4))))
            y += step
        date = self.text_source.number()
        writer.text(self.right - writer.width(date), y, date)
        return y + 2 * step

    def _running_header(self) -> None:
        writer = self.writer(self.body_font, 0.8)
        y = max(2, int(self.top * 0.4))
        text = self.text_source.title(int(self.rng.integers(2, 6)))
        x = self.left if self.rng.random() < 0.5 else self.right - writer.width(text)
        writer.text(x, y, text)
        if self.rng.random() < 0.5:
            self._rule(self.left, self.right, y + writer.height + 3)

    def _page_number(self) -> None:
        writer = self.writer(self.body_font, 0.9)
        text = str(int(self.rng.integers(1, 400)))
        y = int(self.bottom + (self.h - self.bottom) * 0.4)
        x = {
            0: (self.w - writer.width(text)) / 2,
            1: self.right - writer.width(text),
            2: self.left,
        }[int(self.rng.integers(3))]
        writer.text(x, min(y, self.h - writer.height - 2), text)

    def _receipt(self) -> None:
        mono = self.writer(self.mono_font)
        y = self._heading(self.left, self.right, self.top, level=1)
        step = int(mono.height * self.leading)
        dash = "-" * max(4, (self.right - self.left) // max(1, mono.width("-")))
        for _ in range(int(self.rng.integers(6, 30))):
            if y + mono.height > self.bottom:
                break
            if self.rng.random() < 0.1:
                mono.text(self.left, y, dash)
            else:
                item = " ".join(
                    self.text_source.word() for _ in range(int(self.rng.integers(1, 3)))
                )
                price = f"{self.rng.uniform(0.2, 99):.2f}"
                mono.text(self.left, y, item[: max(1, len(item))])
                mono.text(self.right - mono.width(price), y, price)
            y += step


def render_page(seed: int, fonts: tuple[Font, ...] | None = None) -> np.ndarray:
    """One upright base page for this seed: uint8 HxW, white paper (255), black ink (0)."""
    return PageRenderer(seed, fonts).render()
