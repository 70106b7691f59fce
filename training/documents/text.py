"""Words for synthetic pages, in several scripts and languages.

The words need not make sense: the localiser must learn what text looks like at a glance (line
structure, letter shapes, ascenders over descenders), not what it says. Latin-script languages draw
from short word lists written for this project; the other scripts build pseudo-words from their
alphabets so letter frequencies are roughly plausible.
"""

from __future__ import annotations

import numpy as np

WORDS = {
    "english": (
        "the of and to in is that for it with as was on be by this are from at or have not an "
        "which but all were they one their had has been more will would there can if other than "
        "when into some time only these about what could two may first then any like new also "
        "report section table page figure amount total date number account water system market "
        "public company between under during without against general results important question "
        "government development following information available particular experience"
    ),
    "french": (
        "le la les des une dans pour que qui sur avec par est pas plus sont mais comme tout nous "
        "vous elle leur été être fait cette entre deux sans aussi après année premier première "
        "gouvernement développement société marché résultat numéro très déjà où ça français"
    ),
    "german": (
        "der die das und ist nicht mit sich auf für von auch eine einer werden wurde über nach "
        "bei oder wenn noch zwischen Jahr Zeit Seite Betrag Gesamt Straße größer müssen später "
        "Regierung Entwicklung Unternehmen Ergebnis Frage wichtig während"
    ),
    "spanish": (
        "el la los las una para con por que del como más pero sus este entre cuando también "
        "año país según durante página número señor mañana información gobierno desarrollo"
    ),
}

ALPHABETS = {
    # (vowels, consonants) for pseudo-words
    "cyrillic": ("аеиоуыэюя", "бвгджзклмнпрстфхцчшщ"),
    "greek": ("αεηιουω", "βγδζθκλμνξπρστφχψ"),
    "hebrew": ("אהוי", "בגדזחטכלמנסעפצקרשת"),
    "arabic": ("اوي", "بتثجحخدذرزسشصضطظعغفقكلمنه"),
}
RTL_SCRIPTS = ("hebrew", "arabic")
# Devanagari: consonants, and the vowel signs that follow them (a word hangs from its headline).
DEVANAGARI = ("कखगघचछजझटठडढणतथदधनपफबभमयरलवशषसह", "ािीुूेैोौं")
# Japanese: kana and common kanji; a "word" is a run of them (Japanese has no spaces).
CJK = (
    "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"
    "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモラリルレロン"
    "日本国人年大十二一中出上見生時行事自社者分前後東京会長間手新学高文明月本語"
)

# Share of pages per script: mostly Latin, as in the scans users send, but enough of the others
# that the model does not learn "ragged right edge means upright" from left-to-right text only.
SCRIPT_WEIGHTS = {"latin": 0.72, "cyrillic": 0.1, "greek": 0.06, "hebrew": 0.06, "arabic": 0.06}
# The varied bank (special_pages.py) adds Devanagari and CJK, where a font for them is installed.
VARIED_SCRIPT_WEIGHTS = {**SCRIPT_WEIGHTS, "latin": 0.64, "devanagari": 0.05, "cjk": 0.07}


class TextSource:
    """Draws words in one script and language, seeded."""

    def __init__(self, rng: np.random.Generator, script: str):
        self.rng = rng
        self.script = script
        if script == "latin":
            language = rng.choice(sorted(WORDS))
            self.words = WORDS[language].split()
        else:
            self.words = []

    @property
    def rtl(self) -> bool:
        return self.script in RTL_SCRIPTS

    def word(self) -> str:
        rng = self.rng
        if self.words and rng.random() < 0.85:
            word = self.words[rng.integers(len(self.words))]
        elif self.script == "cjk":
            word = "".join(rng.choice(list(CJK), size=int(rng.integers(1, 7))))
        elif self.script == "devanagari":
            consonants, signs = DEVANAGARI
            word = "".join(
                str(rng.choice(list(consonants)))
                + (str(rng.choice(list(signs))) if rng.random() < 0.6 else "")
                for _ in range(int(rng.integers(1, 5)))
            )
        elif self.script == "latin":
            word = "".join(rng.choice(list("etaoinshrdlucmfwypvbgk"), size=rng.integers(2, 10)))
        else:
            vowels, consonants = ALPHABETS[self.script]
            n = int(rng.integers(2, 9))
            word = "".join(
                rng.choice(list(consonants)) if i % 2 == 0 else rng.choice(list(vowels))
                for i in range(n)
            )
        if rng.random() < 0.04:
            word = self.number()
        elif rng.random() < 0.06 and self.script in ("latin", "cyrillic", "greek"):
            word = word[:1].upper() + word[1:]
        return word

    def sentence(self, n_words: int) -> list[str]:
        words = [self.word() for _ in range(n_words)]
        if self.script == "cjk":  # punctuation of its own, capitals none
            return [w + ("、" if self.rng.random() < 0.1 else "") for w in words[:-1]] + [
                *words[-1:]
            ]
        if words and self.script not in RTL_SCRIPTS:
            words[0] = words[0][:1].upper() + words[0][1:]
        for i in range(len(words)):
            if self.rng.random() < 0.08:
                words[i] += str(self.rng.choice([",", ";", ":"]))
        if words:
            words[-1] += "."
        return words

    def number(self) -> str:
        kind = self.rng.integers(4)
        if kind == 0:
            return str(int(self.rng.integers(1, 2000)))
        if kind == 1:
            return f"{self.rng.uniform(0, 999):.2f}"
        if kind == 2:
            d, m, y = (
                self.rng.integers(1, 29),
                self.rng.integers(1, 13),
                self.rng.integers(1950, 2030),
            )
            return f"{d:02d}/{m:02d}/{y}"
        return f"{int(self.rng.integers(1, 100))}%"

    def title(self, n_words: int) -> str:
        words = [self.word() for _ in range(n_words)]
        if self.script == "latin" and self.rng.random() < 0.3:
            return " ".join(words).upper()
        if self.script in ("cjk", "devanagari"):
            return " ".join(words)
        return " ".join(w[:1].upper() + w[1:] if self.script == "latin" else w for w in words)


def pick_script(rng: np.random.Generator, shares: dict[str, float] | None = None) -> str:
    shares = SCRIPT_WEIGHTS if shares is None else shares
    names = list(shares)
    weights = np.array([shares[n] for n in names])
    return str(rng.choice(names, p=weights / weights.sum()))
