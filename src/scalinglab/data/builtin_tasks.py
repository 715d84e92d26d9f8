"""Built-in downstream tasks for tiny byte-level models: no download, and never drawn from the
training split. Items are short (contexts of at most 32 characters, answers of at most 8) so that
a 3-shot prompt fits a context of ~128-160 bytes, and plain ASCII, so characters are bytes.

  recall      in-context key->value recall: "kq=37 mb=05 zt=81 ab=62 mb=" -> "05"; the ability
              that appears abruptly with depth and training. Generation; chance 1/100.
  copy        continue a repeated random string: "qwertyuiopas|qwerty" -> "uiopas". Generation;
              chance 26^-6, about 0.
  cloze       the true next 8 characters of held-out text after a context of at most 32,
              against 3 distractors of 8 characters from elsewhere in it. 4 choices; chance 0.25.
  completion  the rest of a held-out line (2 to 8 characters) after a context of at most 32.
              Generation; chance about 0.

Synthetic tasks (recall, copy) draw test and pool items with different seeds; held-out tasks
(cloze, completion) draw the pool from the first half of the held-out text and test items from the
second. Answers start a word (never inside one), contexts start a document or follow whitespace,
and no item spans a document boundary (NUL in the byte-level corpus). Pool and test share no item."""

from __future__ import annotations

import re
import string

import numpy as np

from ..errors import SpecError
from .tasks import Item, Task, TaskKind

BUILTIN = {
    "recall": "in-context key->value recall, 'kq=37 mb=05 ab=62 mb=' -> '05' (generation, chance 0.01)",
    "copy": "continue a repeated random string, 'qwertyuiopas|qwerty' -> 'uiopas' (generation, chance ~0)",
    "cloze": "the true next 8 characters of held-out text against 3 distractors (4 choices, chance 0.25)",
    "completion": "the rest of a held-out line, at most 8 characters (generation, chance ~0)",
}
PAIRS = 4  # recall: key=value pairs in a context
COPY_LEN = 12  # copy: the random string; its second half is the target
SEPARATOR = "|"
CONTEXT = 32  # held-out tasks: at most this many characters of context...
MIN_CONTEXT = 16  # ...and at least this many, after trimming to a clean start
ANSWER = 8
CHOICES = 4
CHANCE = {"recall": 1 / 100, "copy": 26.0 ** -(COPY_LEN - COPY_LEN // 2), "cloze": 1 / CHOICES, "completion": 0.0}

# An answer starts a word: an identifier character not after a word character or an apostrophe
# (not the "t" of "can't"). Cloze answers are
# any 8 printable characters from there; a completion is the longest rest of a line (2..8 characters,
# not ending in a space) that starts so, one per line.
_CLOZE = re.compile(rf"(?<![\w'])(?=([A-Za-z_][ -~]{{{ANSWER - 1}}}))")
_COMPLETION = re.compile(rf"(?<![\w'])([A-Za-z_][ -~]{{0,{ANSWER - 2}}}[!-~])(?=\n)")
_PLAIN = re.compile(r"[ -~\n]*")  # printable ASCII and newlines: no NUL, no bytes that are not characters
_SPACE = re.compile(r"\s")

Seen = set[tuple[str, str]]  # (context, answer) of the items drawn so far


def builtin_task(name: str, val_text: str, n_test: int, n_pool: int, seed: int) -> Task:
    """n_test test items and a pool of n_pool, a pure function of (val_text, seed, n_test, n_pool).
    val_text is the corpus's held-out split as text (documents separated by NUL); only cloze and
    completion read it. Test items are drawn first, so the pool never changes them."""
    if name not in BUILTIN:
        raise SpecError(f"task {name!r}: no such built-in task; choose one of {', '.join(BUILTIN)}")
    for field, n in (("n_test", n_test), ("n_pool", n_pool)):
        if n < 1:
            raise SpecError(f"task {name}: {field} is {n}; give at least 1")
    salt = list(BUILTIN).index(name)  # a different stream for each task from the same seed
    seen: Seen = set()
    if name in ("recall", "copy"):
        make = _recall if name == "recall" else _copy
        test, pool = (_synthetic(make, n, np.random.default_rng([seed, salt, split]), seen) for split, n in enumerate((n_test, n_pool)))
        return Task(name, TaskKind.GENERATION, pool, test, CHANCE[name], target_delimiter="", fewshot_delimiter="\n")
    half = len(val_text) // 2
    test = _held_out(name, val_text[half:], half, n_test, np.random.default_rng([seed, salt, 0]), seen)
    pool = _held_out(name, val_text[:half], 0, n_pool, np.random.default_rng([seed, salt, 1]), seen)
    kind = TaskKind.MULTIPLE_CHOICE if name == "cloze" else TaskKind.GENERATION
    return Task(name, kind, pool, test, CHANCE[name], target_delimiter="", fewshot_delimiter="\n\n")


def _synthetic(make, n: int, rng: np.random.Generator, seen: Seen) -> tuple[Item, ...]:
    """n items make(rng) -> (context, target), none seen before; ids 0, 1, ..."""
    items: list[Item] = []
    while len(items) < n:
        context, target = make(rng)
        if (context, target) not in seen:  # a repeat is astronomically rare, but then it is skipped
            seen.add((context, target))
            items.append(Item(str(len(items)), context, target=target))
    return tuple(items)


def _recall(rng: np.random.Generator) -> tuple[str, str]:
    """PAIRS distinct two-letter keys with two-digit values, then one of the keys again."""
    letters = string.ascii_lowercase
    keys = [letters[k // 26] + letters[k % 26] for k in rng.choice(26 * 26, PAIRS, replace=False)]
    values = [f"{v:02d}" for v in rng.integers(0, 100, PAIRS)]
    q = int(rng.integers(PAIRS))
    return " ".join(f"{k}={v}" for k, v in zip(keys, values)) + f" {keys[q]}=", values[q]


def _copy(rng: np.random.Generator) -> tuple[str, str]:
    s = "".join(string.ascii_lowercase[i] for i in rng.integers(0, 26, COPY_LEN))
    return f"{s}{SEPARATOR}{s[: COPY_LEN // 2]}", s[COPY_LEN // 2 :]


def _held_out(name: str, text: str, offset: int, n: int, rng: np.random.Generator, seen: Seen) -> tuple[Item, ...]:
    """n items at random answer positions of `text` (which starts at character `offset` of the
    held-out text: item ids are the answer's offset there), none seen before."""
    found = [(m.start(1), m.group(1)) for m in (_CLOZE if name == "cloze" else _COMPLETION).finditer(text)]
    answers = sorted({a for _, a in found})  # cloze distractors: the same kind of answer, elsewhere
    if name == "cloze" and len(answers) < CHOICES:
        raise SpecError(
            f"task cloze: the held-out text has {len(answers)} distinct answers, fewer than {CHOICES}; "
            "hold out more text (data.val_fraction)"
        )
    items: list[Item] = []
    for i in rng.permutation(len(found)):
        if len(items) == n:
            break
        p, answer = found[i]
        context = _context(text, p)
        if context is None or (context, answer) in seen:
            continue
        seen.add((context, answer))
        if name == "cloze":
            items.append(_cloze_item(str(offset + p), context, answer, answers, rng))
        else:
            items.append(Item(str(offset + p), context, target=answer))
    if len(items) < n:
        split = "first" if offset == 0 else "second"
        raise SpecError(
            f"task {name}: the {split} half of the held-out text yields {len(items)} items, fewer than "
            f"the {n} asked for; ask for fewer or hold out more text (data.val_fraction)"
        )
    return tuple(items)


def _context(text: str, p: int) -> str | None:
    """At most CONTEXT characters before p, starting at their document's start or after whitespace
    (never inside a word), without leading whitespace (indentation would crowd out the words);
    None where too short or not plain ASCII."""
    window = text[max(0, p - CONTEXT - 1) : p]  # one more: the character before a context may be the whitespace
    if "\x00" in window:
        window = window[window.rindex("\x00") + 1 :]
    else:
        space = _SPACE.search(window)
        window = window[space.end() :] if space else ""
    window = window.lstrip()
    if len(window) < MIN_CONTEXT or not _PLAIN.fullmatch(window):
        return None
    return window


def _cloze_item(item_id: str, context: str, answer: str, answers: list[str], rng: np.random.Generator) -> Item:
    """The answer among CHOICES - 1 distractors drawn from `answers`, at a random place."""
    drawn = [answers[j] for j in rng.choice(len(answers), CHOICES, replace=False)]
    choices = [a for a in drawn if a != answer][: CHOICES - 1]
    gold = int(rng.integers(CHOICES))
    choices.insert(gold, answer)
    return Item(item_id, context, tuple(choices), gold)
