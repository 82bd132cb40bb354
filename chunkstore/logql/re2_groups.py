"""Names of the capture groups of an RE2 pattern, as written (duplicates kept).

RE2's own group map keeps one entry per name, but Go's regexp (and so Loki)
rejects a repeated name and reports the names in source order, so the
pattern text itself is scanned.  Used by the LogQL parser's checks and by
the ``| regexp`` stage.
"""

from __future__ import annotations

import re  # a fixed internal pattern only

__all__ = ["capture_names"]

_GROUP_NAME = re.compile(r"\(\?P?<([^>]*)>")


def capture_names(pattern: str) -> list[str]:
    """Names of ``(?P<name>``/``(?<name>`` groups in source order, duplicates kept.

    Escapes, ``\\Q...\\E`` and character classes (including ``[:alpha:]``)
    are skipped so their text is not mistaken for a group.  The pattern is
    assumed to compile (callers check that first).
    """
    names = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if pattern.startswith("Q", i + 1):
                end = pattern.find("\\E", i + 2)
                i = n if end < 0 else end + 2
            else:
                i += 2
        elif c == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            if i < n and pattern[i] == "]":
                i += 1
            while i < n and pattern[i] != "]":
                if pattern[i] == "\\":
                    i += 2
                elif pattern.startswith("[:", i):
                    end = pattern.find(":]", i + 2)
                    i = i + 1 if end < 0 else end + 2
                else:
                    i += 1
            i += 1
        elif c == "(":
            m = _GROUP_NAME.match(pattern, i)
            if m:
                names.append(m.group(1))
                i = m.end()
            else:
                i += 1
        else:
            i += 1
    return names
