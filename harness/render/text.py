"""Text from outside (file names, target names, a board's messages) made safe for a terminal.

A model file may be named ``ev\\x1b[2Jil.tflite``; printed raw, the escape sequence clears the
screen, recolours what follows, or retitles the terminal window. Everything that prints such text
(table cells, progress lines, error lines, logs) passes it through ``visible`` first, so control
characters show as escapes (``\\x1b``) instead of acting. JSON output needs none of this:
``json.dumps`` escapes control characters itself.
"""

from __future__ import annotations

import logging
import unicodedata

from rich.text import Text

# Format characters that reorder or hide text (bidirectional overrides and isolates, zero-width
# marks): they can make a name read as another one ("Trojan Source"). Other format characters,
# such as the joiners inside emoji, are left alone.
_HIDING = frozenset("\u061c\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff")


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every control character (C0, DEL, C1, and the hiding format characters
    above) replaced by its escape, e.g. ESC by ``\\x1b`` and a newline by ``\\x0a``; any other
    text, including non-ASCII letters, is unchanged."""
    if text.isprintable():  # the common case, and fast: no control or format character at all
        return text
    return "".join(_escape(ch) if _hides(ch) else ch for ch in text)


def plain(text: str, style: str = "") -> Text:
    """``text`` as a rich Text: control characters escaped, and [brackets] never read as markup
    (a plain str in a table cell or title would be, so a name such as "a[/b].tflite" would fail)."""
    return Text(visible(text), style=style)


def _hides(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc" or ch in _HIDING


class VisibleFormatter(logging.Formatter):
    """A log formatter that escapes control characters in each message (a model's name in a
    warning), but not in the traceback that ``--debug`` appends, which spans lines by design."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return visible(super().formatMessage(record))
