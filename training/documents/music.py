"""Music scores for the varied bank (special_pages.py), engraved or written by hand.

Turned by half a turn, a score keeps much of its look (a stem up on the right of its head becomes
a stem down on the left of one), so the page draws what does not survive the turn: clefs, key
and time signatures at the left of each staff, flags and dots to the right of the notes,
accidentals to their left, rests shaped like a 7 or a zigzag, a final double bar thick on its
right, a piece that ends part of the way along its last staff, lyrics under a staff. The
handwritten style (old manuscript copies, the commonest music in public scans) packs many
wobbly staves on the page with dense beamed notes in a grey ink.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import ImageDraw

from stn_align.training.documents.layout import PageRenderer, Writer

CLEF = "\U0001d11e"  # the G clef: FreeSerif draws it; other fonts get a hand-drawn one
HANDWRITTEN_SHARE = 0.5

Point = tuple[float, float]


class MusicPageRenderer(PageRenderer):
    """PageRenderer with `_page_music`; its kind's share is set by the varied bank."""

    # The page's style, and the key and clef its staves share; drawn again for each page.
    hand, ink, slant = False, 0, 0.0
    key, sharp, clef = 0, True, "G"

    def _page_music(self) -> None:
        rng = self.rng
        self.hand = rng.random() < HANDWRITTEN_SHARE
        self.ink = int(rng.integers(20, 110)) if self.hand else int(rng.integers(0, 60))
        self.slant = rng.uniform(-0.5, 0.5) if self.hand else 0.0
        y = self.top
        if rng.random() < (0.4 if self.hand else 0.8):
            title = self.writer(self.head_font, rng.uniform(1.6, 2.6))
            text = self.text_source.title(int(rng.integers(1, 4)))
            title.text((self.w - title.width(text)) / 2, y, text, self.ink)
            y += int(title.height * 1.5)
            small = self.writer(self.body_font, 0.9)
            composer = self.text_source.title(2)
            small.text(self.right - small.width(composer), y, composer, self.ink)
            small.text(self.left, y, self.text_source.title(1), self.ink)
            y += int(small.height * 2)
        if self.hand:  # many single staves close together
            space = max(4, int(self.h * rng.uniform(0.005, 0.008)))
            staves = int(rng.choice([1, 1, 1, 2]))
            gap = int(space * rng.uniform(3.0, 6.0))
        else:
            space = max(4, int(self.h * rng.uniform(0.006, 0.011)))
            staves = int(rng.choice([1, 1, 2, 2, 3, 4]))
            gap = int(space * rng.uniform(6, 9))
        lyrics = staves == 1 and rng.random() < 0.4
        gap += int(self.body_size * 1.6) if lyrics else 0
        system_h = staves * 4 * space + (staves - 1) * int(space * rng.uniform(4, 7))
        systems = max(1, (self.bottom - y) // (system_h + gap))
        end_at = int(rng.integers(systems // 2, systems)) if rng.random() < 0.5 else systems - 1
        for index in range(systems):
            if index > end_at:  # the piece has ended: ruled paper left empty, or nothing
                if self.hand and rng.random() < 0.7:
                    self._staff_lines(self.left, self.right, y, space, staves)
                y += system_h + gap
                continue
            last = index == end_at
            self._system(y, space, staves, first=index == 0, last=last)
            if lyrics:
                words = self.text_source.sentence(int(rng.integers(4, 12)))
                font = next((f for f in self.fonts if f.italic), self.body_font)
                writer = self.writer(font if self.hand else self.body_font, 0.9)
                line_y = y + 4 * space + int(space * 1.5)
                self._lines(self.left + 8 * space, self.right, line_y, words, writer, "justify",
                            limit=line_y + int(writer.height) + 1)  # fmt: skip
            y += system_h + gap
        if rng.random() < 0.6:
            self._page_number()

    # ---- strokes ---------------------------------------------------------------------------

    def _stroke(self, points: list[Point], width: float = 1) -> None:
        """A polyline; by hand it wobbles a little between its points."""
        if self.hand and len(points) == 2:
            (xa, ya), (xb, yb) = points
            t = np.linspace(0, 1, 6)
            jitter = self.rng.normal(0, 0.4, (6, 2)) * (t * (1 - t))[:, None] * 4
            points = [(xa + (xb - xa) * s + j[0], ya + (yb - ya) * s + j[1])
                      for s, j in zip(t, jitter, strict=True)]  # fmt: skip
        ImageDraw.Draw(self.canvas).line(points, fill=self.ink, width=max(1, int(round(width))))

    def _blob(self, cx: float, cy: float, rx: float, ry: float, filled: bool = True) -> None:
        """A note head: an ellipse tilted up to the right (more so by hand)."""
        tilt = -0.35 if not self.hand else -0.35 + self.slant * 0.4
        points = [
            (cx + rx * math.cos(a) * math.cos(tilt) - ry * math.sin(a) * math.sin(tilt),
             cy + rx * math.cos(a) * math.sin(tilt) + ry * math.sin(a) * math.cos(tilt))
            for a in np.linspace(0, 2 * math.pi, 16, endpoint=False)
        ]  # fmt: skip
        draw = ImageDraw.Draw(self.canvas)
        draw.polygon(points, fill=self.ink if filled else None, outline=self.ink)

    def _staff_lines(self, x0: int, x1: int, top: int, space: int, staves: int) -> list[int]:
        wobble = self.rng.uniform(0.1, 0.6) * space / 10 if self.hand else 0.0
        drift = self.rng.uniform(-0.4, 0.4) * space if self.hand else 0.0
        tops, y = [], top
        for _ in range(staves):
            tops.append(y)
            for k in range(5):
                yy = y + k * space
                rise = drift / max(1, x1 - x0)
                points = [(x, yy + rise * (x - x0) + wobble * math.sin(x / 97 + k))
                          for x in np.linspace(x0, x1, 12)]  # fmt: skip
                ImageDraw.Draw(self.canvas).line(points, fill=self.ink, width=1)
            y += 4 * space + int(space * self.rng.uniform(4, 7))
        return tops

    # ---- a system of staves ----------------------------------------------------------------

    def _system(self, top: int, space: int, staves: int, first: bool, last: bool) -> None:
        rng = self.rng
        x0 = self.left + (int(space * 4) if first and rng.random() < 0.7 else 0)
        end = self.right if not last else int(x0 + (self.right - x0) * rng.uniform(0.3, 1.0))
        x1 = self.right if (last and self.hand and rng.random() < 0.6) else end
        tops = self._staff_lines(x0, x1, top, space, staves)
        bottom = tops[-1] + 4 * space
        self._stroke([(x0, top), (x0, bottom)], max(1, space // 4))
        if staves > 1:  # a brace or bracket joins the staves, at the left
            bx = x0 - int(space * 1.2)
            self._stroke([(bx, top), (bx, bottom)], max(2, space // 3))
            self._stroke([(bx, top), (bx + space, top - space // 2)], 2)
            self._stroke([(bx, bottom), (bx + space, bottom + space // 2)], 2)
        if first or rng.random() < 0.2:  # the key and clef hold down the page, mostly
            self.key = int(rng.integers(0, 5)) if rng.random() < 0.6 else 0
            self.sharp = rng.random() < 0.5
            self.clef = str(rng.choice(["G", "G", "C", "F"]))
        key, sharp, clef = self.key, self.sharp, self.clef
        meter = first and rng.random() < 0.7
        start = x0 + int(space * (4 + 1.1 * key + (2 if meter else 0)))
        bars = int(rng.integers(2, 6)) if not self.hand else int(rng.integers(3, 7))
        edges = np.linspace(start, end, bars + 1)
        for staff_top in tops:
            self._clef(clef, x0 + space // 2, staff_top, space)
            for k in range(key):
                kx = x0 + space * (3.6 + 1.1 * k)
                step = [0, 3, -1, 2, 5][k] if sharp else [4, 1, 5, 2, 6][k]
                self._accidental("#" if sharp else "b", kx, staff_top + step * space / 2, space)
            if meter:
                self._meter(x0 + int(space * (3.8 + 1.1 * key)), staff_top, space)
            for b in range(bars):
                self._bar(int(edges[b]) + space, int(edges[b + 1]) - space, staff_top, space)
        for e in edges[1:-1]:
            self._stroke([(int(e), top), (int(e), bottom)], 1)
        if last:  # the final double bar: a thin line, then a thick one on its right
            self._stroke([(end - space, top), (end - space, bottom)], 1)
            self._stroke([(end - space // 4, top), (end - space // 4, bottom)], max(2, space // 2))
        else:
            self._stroke([(end, top), (end, bottom)], 1)
        if rng.random() < 0.4:  # a measure number or a tempo word above the first staff
            small = self.writer(self.body_font, 0.6)
            text = str(int(rng.integers(2, 200))) if rng.random() < 0.6 else "Allegro"
            small.text(x0, top - small.height - space, text, self.ink)

    def _clef(self, kind: str, x: int, staff_top: int, space: int) -> None:
        width = max(1, space // 5)
        if kind == "G":
            font = next((f for f in self.fonts if "music" in f.scripts), None)
            if font is not None and not self.hand:
                Writer(self.canvas, font, space * 6.5, False).text(
                    x, staff_top - space * 2.4, CLEF, self.ink
                )
                return
            # A spiral around the second line from the bottom and a tall stroke with a hook at
            # the top and a tail below the staff (its shape differs up and down).
            cx, cy = x + space, staff_top + 3 * space
            spiral = [(cx + space * 0.12 * t * math.cos(t), cy + space * 0.12 * t * math.sin(t))
                      for t in np.linspace(0.5, 9.0, 40)]  # fmt: skip
            self._stroke(spiral, width)
            self._stroke([(cx + space * 0.6, cy + space * 2), (cx, staff_top - space * 1.5)], width)
            ImageDraw.Draw(self.canvas).arc(
                [cx - space, staff_top - space * 2, cx + space * 0.6, staff_top - space * 0.6],
                180, 360, fill=self.ink, width=width)  # fmt: skip
            ImageDraw.Draw(self.canvas).ellipse(
                [cx - space * 0.3, cy + space * 1.8, cx + space * 0.5, cy + space * 2.5],
                fill=self.ink)  # fmt: skip
        elif kind == "C":  # two bars and two bumps opening to the right of them
            self._stroke([(x, staff_top), (x, staff_top + 4 * space)], max(2, space // 3))
            self._stroke([(x + space * 0.5, staff_top), (x + space * 0.5, staff_top + 4 * space)])
            for cy in (staff_top + space, staff_top + 3 * space):
                ImageDraw.Draw(self.canvas).arc(
                    [x + space * 0.3, cy - space, x + space * 1.8, cy + space],
                    270, 90, fill=self.ink, width=width)  # fmt: skip
        else:  # F: a head on the fourth line curling right and down, two dots on its right
            cy = staff_top + space
            self._blob(x + space * 0.5, cy, space * 0.35, space * 0.35)
            ImageDraw.Draw(self.canvas).arc(
                [x + space * 0.2, cy - space * 0.7, x + space * 2.0, cy + space * 2.6],
                200, 90, fill=self.ink, width=width)  # fmt: skip
            for dy in (-0.5, 0.5):
                self._blob(x + space * 2.4, cy + dy * space, space * 0.15, space * 0.15)

    def _meter(self, x: int, staff_top: int, space: int) -> None:
        rng = self.rng
        if rng.random() < 0.3:  # common time: a C
            ImageDraw.Draw(self.canvas).arc(
                [x, staff_top + space, x + space * 1.6, staff_top + space * 3],
                45, 315, fill=self.ink, width=max(1, space // 4))  # fmt: skip
            return
        upper, lower = [(2, 4), (3, 4), (4, 4), (6, 8), (3, 8), (2, 2)][int(rng.integers(6))]
        bold = next((f for f in self.fonts if f.bold), self.head_font)
        for value, y in ((upper, staff_top), (lower, staff_top + 2 * space)):
            Writer(self.canvas, bold, space * 2.4, False).text(x, y - space * 0.3, str(value),
                                                              self.ink)  # fmt: skip

    def _accidental(self, kind: str, x: float, cy: float, space: int) -> None:
        s = space
        if kind == "#":
            for dx in (-0.25, 0.25):
                self._stroke([(x + dx * s, cy - 1.3 * s), (x + dx * s, cy + 1.3 * s)])
            for dy in (-0.4, 0.4):
                self._stroke([(x - 0.5 * s, cy + dy * s + 0.2 * s),
                              (x + 0.5 * s, cy + dy * s - 0.2 * s)], max(1, s // 4))  # fmt: skip
        elif kind == "b":  # a tall stem with a loop at its foot, on the right
            self._stroke([(x - 0.3 * s, cy - 1.8 * s), (x - 0.3 * s, cy + 0.5 * s)])
            ImageDraw.Draw(self.canvas).arc(
                [x - 0.8 * s, cy - 0.4 * s, x + 0.4 * s, cy + 0.5 * s],
                270, 90, fill=self.ink, width=max(1, s // 5))  # fmt: skip
        else:  # a natural
            self._stroke([(x - 0.25 * s, cy - 1.3 * s), (x - 0.25 * s, cy + 0.4 * s)])
            self._stroke([(x + 0.25 * s, cy - 0.4 * s), (x + 0.25 * s, cy + 1.3 * s)])
            for dy in (-0.3, 0.3):
                self._stroke([(x - 0.25 * s, cy + dy * s + 0.1 * s),
                              (x + 0.25 * s, cy + dy * s - 0.1 * s)], max(1, s // 4))  # fmt: skip

    # ---- one bar of notes ------------------------------------------------------------------

    def _bar(self, x0: int, x1: int, staff_top: int, space: int) -> None:
        rng = self.rng
        count = int(rng.integers(1, 9)) if not self.hand else int(rng.integers(3, 13))
        xs = np.linspace(x0, x1, count + 2)[1:-1]
        i = 0
        while i < count:
            roll = rng.random()
            group = int(rng.integers(2, 5))
            if roll < 0.12:
                self._rest(xs[i], staff_top, space)
                i += 1
            elif roll < 0.5 and i + group <= count:  # a beamed group, stems one way
                self._beamed(list(xs[i : i + group]), staff_top, space)
                i += group
            else:
                self._note(xs[i], int(rng.integers(-3, 12)), staff_top, space)
                i += 1
        if rng.random() < 0.15:  # a dynamic mark under the staff
            small = self.writer(self.head_font, 0.8)
            mark = str(rng.choice(["p", "f", "mf", "pp", "cresc.", "dolce"]))
            small.text(x0, staff_top + 6 * space, mark, self.ink)

    def _head(self, x: float, step: int, staff_top: int, space: int, filled: bool) -> float:
        """Head, ledger lines, maybe an accidental on its left and a dot on its right; its y."""
        rng = self.rng
        half = space / 2
        cy = staff_top + step * half
        w = space * 0.62
        self._blob(x, cy, w, space * 0.42, filled)
        ledgers = range(-2, step - 1, -2) if step < -1 else range(10, step + 1, 2)
        for ledger in ledgers:
            ly = staff_top + ledger * half
            self._stroke([(x - w * 1.6, ly), (x + w * 1.6, ly)])
        if rng.random() < 0.12:
            self._accidental(str(rng.choice(["#", "b", "n"])), x - w - space * 0.9, cy, space)
        if rng.random() < 0.12:
            dy = -half / 2 if step % 2 == 0 else 0  # a dot on a line sits in the space above
            r = space * 0.14
            self._blob(x + w + space * 0.5, cy + dy, r, r)
        return cy

    def _note(self, x: float, step: int, staff_top: int, space: int) -> None:
        rng = self.rng
        filled = rng.random() < 0.8
        cy = self._head(x, step, staff_top, space, filled)
        if rng.random() < 0.1:
            return  # a whole note
        w = space * 0.62
        up = step >= 4  # on or below the middle line: the stem goes up, on the right
        sx = x + w if up else x - w
        tip = cy - 3.5 * space if up else cy + 3.5 * space
        self._stroke([(sx, cy), (sx, tip)])
        if filled and rng.random() < 0.35:  # a flag, always to the right of the stem
            back = 1.3 * space if up else -1.3 * space
            self._stroke([(sx, tip), (sx + space * 0.5, tip + back * 0.4),
                          (sx + space * 0.9, tip + back)], max(1, space // 4))  # fmt: skip

    def _beamed(self, xs: list[float], staff_top: int, space: int) -> None:
        rng = self.rng
        steps = [int(s) for s in rng.integers(-1, 10, len(xs))]
        up = float(np.mean(steps)) >= 4
        w = space * 0.62
        ys = [self._head(x, s, staff_top, space, True) for x, s in zip(xs, steps, strict=True)]
        sxs = [x + w if up else x - w for x in xs]
        reach = 3.2 * space
        ya = (min(ys) - reach) if up else (max(ys) + reach)
        yb = ya + rng.uniform(-1, 1) * space
        beam_y = [ya + (yb - ya) * (sx - sxs[0]) / max(1e-6, sxs[-1] - sxs[0]) for sx in sxs]
        for sx, y, by in zip(sxs, ys, beam_y, strict=True):
            self._stroke([(sx, y), (sx, by)])
        thick = max(2, int(space * 0.45))
        self._stroke([(sxs[0], beam_y[0]), (sxs[-1], beam_y[-1])], thick)
        if rng.random() < 0.4:  # sixteenths: a second beam, nearer the heads
            off = 0.75 * space if up else -0.75 * space
            self._stroke([(sxs[0], beam_y[0] + off), (sxs[-1], beam_y[-1] + off)], thick)

    def _rest(self, x: float, staff_top: int, space: int) -> None:
        s, t = space, staff_top
        kind = int(self.rng.integers(4))
        if kind == 0:  # a quarter rest: a zigzag with a hook at its foot
            self._stroke([(x, t + 0.6 * s), (x + 0.5 * s, t + 1.4 * s), (x - 0.1 * s, t + 2.1 * s),
                          (x + 0.5 * s, t + 2.8 * s), (x - 0.2 * s, t + 2.9 * s),
                          (x + 0.2 * s, t + 3.5 * s)], max(1, s // 4))  # fmt: skip
        elif kind == 1:  # an eighth rest: a dot and a stroke like a 7
            self._blob(x, t + 1.5 * s, s * 0.2, s * 0.2)
            self._stroke([(x, t + 1.7 * s), (x + 0.7 * s, t + 1.4 * s), (x + 0.1 * s, t + 3.0 * s)])
        elif kind == 2:  # a whole rest hangs under the fourth line
            ImageDraw.Draw(self.canvas).rectangle([x - 0.5 * s, t + s, x + 0.5 * s, t + 1.5 * s],
                                                  fill=self.ink)  # fmt: skip
        else:  # a half rest sits on the middle line
            ImageDraw.Draw(self.canvas).rectangle(
                [x - 0.5 * s, t + 1.5 * s, x + 0.5 * s, t + 2 * s], fill=self.ink
            )
