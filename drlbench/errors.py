"""Errors the user caused: the CLI prints them as one line and exits with code 2."""


class UsageError(Exception):
    """Bad input (unknown name, wrong value type, unwritable path...). The message names the
    bad value and the valid choices; it is shown without a traceback."""


def close_matches(word: str, choices, n: int = 5) -> list[str]:
    import difflib

    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.5)
    substring = [c for c in choices if word.lower() in c.lower() and c not in hits]
    return [lowered[h] for h in hits] + substring[: max(0, n - len(hits))]


def unknown(kind: str, value: str, choices) -> UsageError:
    """`unknown env 'Foo'; did you mean: ...` or the full list when it is short."""
    choices = sorted(choices)
    near = close_matches(value, choices)
    if near:
        hint = "did you mean: " + ", ".join(near)
    else:
        hint = "choose from: " + ", ".join(choices[:30]) + (" ..." if len(choices) > 30 else "")
    return UsageError(f"unknown {kind} {value!r}; {hint}")
