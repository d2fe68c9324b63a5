"""What the Odoo-free layer tells a user: a stable code and its figures, never a sentence.

The models make the sentence (``messages.py``, through ``env._``, in the
reader's language); :func:`as_codes` is the machine's rendering, for logs,
tests and whoever has no sentences. A figure may itself be a :class:`Say`
(a phrase said inside the sentence).
"""

from typing import NamedTuple


class Say(NamedTuple):
    """Something said to a user: a stable code and the figures its sentence shows."""

    code: str
    figures: dict = {}  # noqa: RUF012 - a NamedTuple default, never mutated


def as_codes(code, figures):
    """The machine's rendering of a :class:`Say`: its code and figures (no sentence).

    >>> as_codes("recycles", {"count": 3, "host": "web1"})
    "recycles(count=3, host='web1')"
    >>> as_codes("cpus", {"cpus": Say("count", {"n": 2})})
    'cpus(cpus=count(n=2))'
    >>> as_codes("advice", {})
    'advice'
    """
    if not figures:
        return code
    shown = (as_codes(*value) if isinstance(value, Say) else repr(value) for value in figures.values())
    return f"{code}({', '.join(f'{key}={value}' for key, value in zip(figures, shown, strict=True))})"
