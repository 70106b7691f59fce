"""Kinds of page the article generator (layout.py) does not draw, where orientation is hardest:
newspapers, music scores, a large picture with a short caption, title pages, forms of boxes,
tables of figures, near-empty pages and vertical CJK text. Upright, black on white, from a seed.

    page, kind = render_varied_page(seed)      # a kind drawn from VARIED_KINDS

`render_varied_page` also draws the layout.py kinds (in their own shares) and more scripts
(Devanagari and horizontal CJK besides layout.py's), when a font for them is installed
(fonts.py; `scripts/setup.sh --fonts`). With only DejaVu it still works: CJK falls back to Latin,
and music draws its clefs by hand.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from stn_align.training.documents import scenes
from stn_align.training.documents.fonts import Font, Writer, find_fonts
from stn_align.training.documents.layout import PAGE_KINDS, PageRenderer
from stn_align.training.documents.text import VARIED_SCRIPT_WEIGHTS, TextSource

# Shares of the kinds in the varied bank: the layout.py kinds keep their relative shares.
SPECIAL_KINDS = {
    "newspaper": 0.12,
    "music": 0.08,
    "picture": 0.08,
    "title": 0.05,
    "boxes": 0.05,
    "figures": 0.05,
    "sparse": 0.04,
    "vertical": 0.05,
}
VARIED_KINDS = {
    **{k: v * (1 - sum(SPECIAL_KINDS.values())) for k, v in PAGE_KINDS.items()},
    **SPECIAL_KINDS,
}
CLEF = "\U0001d11e"  # the G clef: FreeSerif draws it; other fonts get a hand-drawn one


class VariedPageRenderer(PageRenderer):
    """PageRenderer with the special kinds and the varied scripts."""

    def __init__(self, seed: int, fonts: tuple[Font, ...] | None = None):
        fonts = find_fonts() if fonts is None else fonts
        super().__init__(seed, fonts, VARIED_KINDS, VARIED_SCRIPT_WEIGHTS)
        if self.kind == "vertical" and self.script != "cjk":
            cjk = [f for f in fonts if "cjk" in f.scripts]
            if cjk:  # vertical text is CJK's
                self.script, self.fonts = "cjk", cjk
                self.text_source = TextSource(self.rng, "cjk")
                self.body_font = self._pick_font()
                self.head_font = self._pick_font(bold=self.rng.random() < 0.7)
            else:
                self.kind = "newspaper"  # no CJK font installed
        if self.kind in SPECIAL_KINDS and self.kind != "vertical":
            self.aspect_portrait()

    def aspect_portrait(self) -> None:
        if self.w > self.h:
            self.w, self.h = self.h, self.w
            self.canvas = Image.new("L", (self.w, self.h), 255)

    def render(self) -> np.ndarray:
        if self.kind not in SPECIAL_KINDS:
            return super().render()
        getattr(self, "_page_" + self.kind)()
        return np.asarray(self.canvas, dtype=np.uint8).copy()

    # ---- newspapers: a masthead, many narrow columns, rules, headlines, advertisements --------

    def _page_newspaper(self) -> None:
        rng = self.rng
        self.body_size = min(self.w, self.h) * rng.uniform(0.008, 0.014)
        self.leading = rng.uniform(1.05, 1.3)
        draw = ImageDraw.Draw(self.canvas)
        y = self.top
        if rng.random() < 0.75:  # the front page: a masthead and a dateline between rules
            masthead = self.writer(self.head_font, rng.uniform(3.5, 7.0))
            title = self.text_source.title(int(rng.integers(1, 3)))
            while masthead.width(title) > self.right - self.left and len(title) > 3:
                title = title[:-1]
            masthead.text((self.left + self.right - masthead.width(title)) / 2, y, title)
            y += int(masthead.height * 1.25)
            small = self.writer(self.body_font, 0.9)
            draw.line([(self.left, y), (self.right, y)], fill=0, width=2)
            y += 4
            for text, where in ((self.text_source.number(), 0), (self.text_source.title(2), 1)):
                x = self.left if where == 0 else self.right - small.width(text)
                small.text(x, y, text)
            y += int(small.height * 1.6)
            draw.line([(self.left, y), (self.right, y)], fill=0, width=1)
            y += int(self.body_size)
        else:
            self._running_header()
        columns = int(rng.integers(3, 7))
        gap = int(self.w * rng.uniform(0.01, 0.025))
        width = (self.right - self.left - gap * (columns - 1)) / columns
        rules = rng.random() < 0.6
        for i in range(columns):
            x0 = int(self.left + i * (width + gap))
            x1 = int(x0 + width)
            if rules and i:
                draw.line([(x0 - gap // 2, y), (x0 - gap // 2, self.bottom)], fill=0, width=1)
            self._newspaper_column(x0, x1, y)

    def _newspaper_column(self, x0: int, x1: int, y: int) -> None:
        rng = self.rng
        body = self.writer(self.body_font)
        while y < self.bottom - body.height:
            u = rng.random()
            if u < 0.15:
                head = self.writer(self.head_font, rng.uniform(1.2, 2.2))
                words = self.text_source.title(int(rng.integers(1, 5))).split()
                y = self._lines(x0, x1, y, words, head, "center") + int(body.height * 0.5)
            elif u < 0.22:  # an advertisement: a box with a big word and a few small lines
                height = int((x1 - x0) * rng.uniform(0.4, 1.2))
                if y + height > self.bottom:
                    break
                ImageDraw.Draw(self.canvas).rectangle([x0, y, x1, y + height], outline=0, width=2)
                big = self.writer(self.head_font, rng.uniform(1.5, 2.8))
                word = self.text_source.word()
                big.text((x0 + x1 - big.width(word)) / 2, y + height * 0.15, word)
                words = self.text_source.sentence(int(rng.integers(4, 14)))
                self._lines(x0 + 4, x1 - 4, y + int(height * 0.5), words, body, "center",
                            limit=y + height - 2)  # fmt: skip
                y += height + int(body.height)
            else:
                words = self.text_source.sentence(int(rng.integers(15, 80)))
                indent = int(body.size * rng.uniform(1, 2.5))
                y = self._lines(x0, x1, y, words, body, "justify", indent) + 2

    # ---- music: staves in systems, clefs and braces at the left, notes with stems ------------

    def _page_music(self) -> None:
        rng = self.rng
        y = self.top
        if rng.random() < 0.8:
            title = self.writer(self.head_font, rng.uniform(1.6, 2.6))
            text = self.text_source.title(int(rng.integers(1, 4)))
            title.text((self.w - title.width(text)) / 2, y, text)
            y += int(title.height * 1.5)
            small = self.writer(self.body_font, 0.9)
            composer = self.text_source.title(2)
            small.text(self.right - small.width(composer), y, composer)
            small.text(self.left, y, self.text_source.title(1))
            y += int(small.height * 2)
        space = max(4, int(self.h * rng.uniform(0.006, 0.011)))  # between staff lines
        staves = int(rng.choice([1, 1, 2, 2, 3, 4]))
        lyrics = staves == 1 and rng.random() < 0.4
        gap = int(space * rng.uniform(6, 9)) + (int(self.body_size * 1.6) if lyrics else 0)
        system_h = staves * 4 * space + (staves - 1) * int(space * rng.uniform(4, 7))
        ink = int(rng.integers(0, 60))
        while y + system_h < self.bottom:
            self._system(y, space, staves, ink, first=y < self.top + 10 * space)
            if lyrics:
                words = self.text_source.sentence(int(rng.integers(4, 12)))
                writer = self.writer(self.body_font, 0.9)
                self._lines(self.left + 8 * space, self.right, y + 4 * space + int(space * 1.5),
                            words, writer, "justify")  # fmt: skip
            y += system_h + gap
        if rng.random() < 0.6:
            self._page_number()

    def _system(self, top: int, space: int, staves: int, ink: int, first: bool) -> None:
        rng = self.rng
        draw = ImageDraw.Draw(self.canvas)
        x0 = self.left + (int(space * 4) if first else 0)
        x1 = self.right
        wobble = rng.uniform(0, 0.6) * space / 10  # handwritten staves are not ruled straight
        lines_y = []
        y = top
        for _ in range(staves):
            lines_y.append(y)
            for k in range(5):
                yy = y + k * space
                points = [
                    (x, yy + wobble * math.sin(x / 97.0 + k)) for x in np.linspace(x0, x1, 12)
                ]
                draw.line(points, fill=ink, width=1)
            y += 4 * space + int(space * rng.uniform(4, 7)) if staves > 1 else 0
        bottom = lines_y[-1] + 4 * space
        draw.line([(x0, top), (x0, bottom)], fill=ink, width=max(1, space // 4))
        if staves > 1:  # a brace or bracket joins the staves, at the left
            bx = x0 - int(space * 1.2)
            draw.line([(bx, top), (bx, bottom)], fill=ink, width=max(2, space // 3))
            draw.line([(bx, top), (bx + space, top - space // 2)], fill=ink, width=2)
            draw.line([(bx, bottom), (bx + space, bottom + space // 2)], fill=ink, width=2)
        bars = int(rng.integers(2, 6))
        edges = np.linspace(x0 + 4 * space, x1, bars + 1)
        for staff_top in lines_y:
            self._clef(x0 + space // 2, staff_top, space, ink)
            for b in range(bars):
                self._notes(int(edges[b]) + space, int(edges[b + 1]) - space, staff_top, space, ink)
        for e in edges[1:]:
            draw.line([(int(e), top), (int(e), bottom)], fill=ink, width=1)
        if rng.random() < 0.5:  # a measure number above the first staff
            small = self.writer(self.body_font, 0.6)
            small.text(x0, top - small.height - space, str(int(rng.integers(2, 200))))

    def _clef(self, x: int, staff_top: int, space: int, ink: int) -> None:
        font = next((f for f in self.fonts if "music" in f.scripts), None)
        if font is not None:
            Writer(self.canvas, font, space * 6.5, False).text(
                x, staff_top - space * 2.4, CLEF, ink
            )
            return
        # Drawn by hand: a spiral around the second line from the bottom and a tall stroke with
        # a hook at the top and a tail below the staff (its shape differs up and down).
        draw = ImageDraw.Draw(self.canvas)
        cx, cy = x + space, staff_top + 3 * space
        spiral = [
            (cx + space * 0.12 * t * math.cos(t), cy + space * 0.12 * t * math.sin(t))
            for t in np.linspace(0.5, 9.0, 40)
        ]
        draw.line(spiral, fill=ink, width=max(1, space // 5))
        draw.line([(cx + space * 0.6, cy + space * 2), (cx, staff_top - space * 1.5)], fill=ink,
                  width=max(1, space // 5))  # fmt: skip
        draw.arc([cx - space, staff_top - space * 2, cx + space * 0.6, staff_top - space * 0.6],
                 180, 360, fill=ink, width=max(1, space // 5))  # fmt: skip
        draw.ellipse([cx - space * 0.3, cy + space * 1.8, cx + space * 0.5, cy + space * 2.5],
                     fill=ink)  # fmt: skip

    def _notes(self, x0: int, x1: int, staff_top: int, space: int, ink: int) -> None:
        rng = self.rng
        draw = ImageDraw.Draw(self.canvas)
        count = int(rng.integers(1, 9))
        xs = np.linspace(x0, x1, count + 2)[1:-1]
        half = space / 2
        for x in xs:
            step = int(rng.integers(-3, 12))  # half spaces below the top line
            cy = staff_top + step * half
            w, h = space * 0.65, space * 0.45
            filled = rng.random() < 0.8
            draw.ellipse([x - w, cy - h, x + w, cy + h], fill=ink if filled else None,
                         outline=ink, width=max(1, space // 6))  # fmt: skip
            for ledger in range(-2, step - 1, -2) if step < -1 else range(10, step + 1, 2):
                ly = staff_top + ledger * half
                draw.line([(x - w * 1.6, ly), (x + w * 1.6, ly)], fill=ink, width=1)
            if rng.random() < 0.9:  # stems: up on the right below the middle line, else down
                if step >= 4:
                    draw.line([(x + w, cy), (x + w, cy - 3.5 * space)], fill=ink, width=1)
                    if rng.random() < 0.3:
                        draw.line([(x + w, cy - 3.5 * space), (x + w + space, cy - 2.4 * space)],
                                  fill=ink, width=max(1, space // 4))  # fmt: skip
                else:
                    draw.line([(x - w, cy), (x - w, cy + 3.5 * space)], fill=ink, width=1)
        if rng.random() < 0.15:  # a dynamic mark under the staff
            small = self.writer(self.head_font, 0.8)
            small.text(x0, staff_top + 6 * space, str(rng.choice(["p", "f", "mf", "pp", "cresc."])))

    # ---- a large picture with a short caption ------------------------------------------------

    def _page_picture(self) -> None:
        rng = self.rng
        y = self.top
        if rng.random() < 0.5:
            self._running_header()
        height = int((self.bottom - y) * rng.uniform(0.55, 0.85))
        width = int((self.right - self.left) * rng.uniform(0.75, 1.0))
        x = (self.w - width) // 2
        if rng.random() < 0.2:  # a little text above the picture
            y = self._lines(self.left, self.right, y, self.text_source.sentence(12),
                            self.writer(self.body_font), "justify")  # fmt: skip
            height = min(height, self.bottom - y - int(self.body_size * 4))
        picture = scenes.scene(rng, (max(8, height), max(8, width)))
        self.canvas.paste(Image.fromarray(picture), (x, y))
        if rng.random() < 0.6:
            ImageDraw.Draw(self.canvas).rectangle([x, y, x + width, y + height], outline=0)
        y += height + int(self.body_size * 0.8)
        caption = self.writer(self.body_font, rng.uniform(0.8, 1.1))
        words = self.text_source.sentence(int(rng.integers(3, 18)))
        self._lines(self.left, self.right, y, words, caption, "center", limit=self.bottom)
        if rng.random() < 0.6:
            self._page_number()

    # ---- a title page ------------------------------------------------------------------------

    def _page_title(self) -> None:
        rng = self.rng
        y = int(self.h * rng.uniform(0.1, 0.3))
        for level, scale in enumerate((rng.uniform(2.0, 4.0), rng.uniform(1.2, 1.8))):
            writer = self.writer(self.head_font if level == 0 else self.body_font, scale)
            words = self.text_source.title(int(rng.integers(1, 6))).split()
            y = self._lines(self.left, self.right, y, words, writer, "center")
            y += int(writer.height * rng.uniform(0.8, 2.0))
        if rng.random() < 0.6:
            cx = self.w // 2
            ImageDraw.Draw(self.canvas).line([(cx - self.w // 8, y), (cx + self.w // 8, y)],
                                             fill=0, width=2)  # fmt: skip
        y += int((self.bottom - y) * rng.uniform(0.2, 0.5))
        author = self.writer(self.body_font, rng.uniform(1.1, 1.6))
        self._lines(self.left, self.right, y, self.text_source.title(2).split(), author, "center")
        bottom = self.writer(self.body_font, 0.9)
        y = self.bottom - int(bottom.height * 4)
        for _ in range(int(rng.integers(1, 4))):
            text = self.text_source.title(int(rng.integers(1, 4)))
            bottom.text((self.w - bottom.width(text)) / 2, y, text)
            y += int(bottom.height * 1.5)

    # ---- a form of labelled boxes ------------------------------------------------------------

    def _page_boxes(self) -> None:
        rng = self.rng
        draw = ImageDraw.Draw(self.canvas)
        y = self._heading(self.left, self.right, self.top, level=0)
        label = self.writer(self.body_font, 0.7)
        while y < self.bottom - self.body_size * 4:
            if rng.random() < 0.15:  # a section bar: white text on a dark band
                band = int(self.body_size * 1.6)
                draw.rectangle([self.left, y, self.right, y + band], fill=int(rng.integers(0, 90)))
                bar = self.writer(self.head_font, 0.9)
                bar.text(
                    self.left + 6, y + (band - bar.height) // 2, self.text_source.title(3), 255
                )
                y += band + 4
                continue
            cells = int(rng.integers(1, 5))
            height = int(self.body_size * rng.uniform(2.2, 4.0))
            edges = np.linspace(self.left, self.right, cells + 1).astype(int)
            for c in range(cells):
                draw.rectangle([edges[c], y, edges[c + 1], y + height], outline=0, width=1)
                label.text(edges[c] + 4, y + 3, self.text_source.title(int(rng.integers(1, 4))))
                if rng.random() < 0.25:
                    box = int(label.height)
                    bx = edges[c] + 6
                    draw.rectangle([bx, y + height - box - 4, bx + box, y + height - 4], outline=0)
            y += height
        small = self.writer(self.body_font, 0.6)
        self._lines(self.left, self.right, self.bottom, self.text_source.sentence(20), small,
                    "left", limit=self.h - 4)  # fmt: skip

    # ---- a table of figures ------------------------------------------------------------------

    def _page_figures(self) -> None:
        rng = self.rng
        y = self.top
        caption = self.writer(self.head_font, 1.1)
        words = ["Table", str(int(rng.integers(1, 40))) + ".", *self.text_source.title(4).split()]
        y = self._lines(self.left, self.right, y, words, caption, "left") + int(self.body_size)
        while y < self.bottom - self.body_size * 6:
            y = self._table(self.left, self.right, y) + int(self.body_size * 1.5)
            if rng.random() < 0.5:
                break
        notes = self.writer(self.body_font, 0.75)
        self._lines(self.left, self.right, y, self.text_source.sentence(int(rng.integers(8, 40))),
                    notes, "justify")  # fmt: skip
        if rng.random() < 0.6:
            self._page_number()

    # ---- a near-empty page ---------------------------------------------------------------------

    def _page_sparse(self) -> None:
        rng = self.rng
        u = rng.random()
        writer = self.writer(self.head_font, rng.uniform(1.0, 2.0))
        if u < 0.4:  # a chapter heading a third down, a few lines under it
            y = int(self.h * rng.uniform(0.2, 0.4))
            y = self._lines(self.left, self.right, y, self.text_source.title(3).split(), writer,
                            "center") + int(self.body_size * 2)  # fmt: skip
            words = self.text_source.sentence(int(rng.integers(5, 40)))
            self._lines(self.left, self.right, y, words, self.writer(self.body_font), "justify")
        elif u < 0.7:  # the end of a chapter: a few lines at the top
            y = self._lines(self.left, self.right, self.top,
                            self.text_source.sentence(int(rng.integers(8, 60))),
                            self.writer(self.body_font), "justify")  # fmt: skip
            mid = self.w // 2
            ImageDraw.Draw(self.canvas).line([(mid - 20, y + 20), (mid + 20, y + 20)], fill=0)
        else:  # one line somewhere
            y = int(self.h * rng.uniform(0.05, 0.6))
            self._lines(self.left, self.right, y, self.text_source.title(4).split(), writer,
                        str(rng.choice(["center", "left"])))  # fmt: skip
        if rng.random() < 0.7:
            self._page_number()

    # ---- vertical CJK: columns from the right, characters from the top --------------------------

    def _page_vertical(self) -> None:
        rng = self.rng
        draw = ImageDraw.Draw(self.canvas)
        writer = self.writer(self.body_font)
        step = int(writer.size * rng.uniform(1.0, 1.15))
        column = int(writer.size * rng.uniform(1.4, 2.0))
        framed = rng.random() < 0.4
        if framed:
            draw.rectangle([self.left - 6, self.top - 6, self.right + 6, self.bottom + 6],
                           outline=0, width=2)  # fmt: skip
        x = self.right - column
        title = rng.random() < 0.5
        while x > self.left:
            big = title and x > self.right - 2 * column
            chars = self.text_source.sentence(int(rng.integers(3, 30)))
            text = "".join(chars)
            w = self.writer(self.head_font, 1.4) if big else writer
            y = self.top + (int(w.size * 2) if rng.random() < 0.2 else 0)
            for ch in text:
                if y + w.size > self.bottom:
                    break
                w.text(x, y, ch)
                y += int(step * (1.4 if big else 1.0))
            if framed:
                draw.line([(x - 3, self.top), (x - 3, self.bottom)], fill=0, width=1)
            x -= int(column * (1.5 if big else 1.0))
        if rng.random() < 0.6:
            self._page_number()


def render_varied_page(seed: int, fonts: tuple[Font, ...] | None = None) -> tuple[np.ndarray, str]:
    """One upright base page of the varied bank for this seed and its kind."""
    renderer = VariedPageRenderer(seed, find_fonts() if fonts is None else fonts)
    return renderer.render(), renderer.kind
