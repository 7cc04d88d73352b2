"""FIM hygiene: is a returned middle mangled?

Two symptoms, both typical of an instruct model or a chat template sitting in the path:
a FIM control token (of any family) in the text, or a middle that runs on past the hole
and rewrites the suffix.
"""

from __future__ import annotations

from evals.fim._prompts import ALL_CONTROL_TOKENS

# Enough of the suffix's first line to recognise it, without demanding the whole line.
_PROBE_CHARS = 40
_MIN_TAIL_CHARS = 6


def control_tokens_in(middle: str) -> list[str]:
    return [tok for tok in ALL_CONTROL_TOKENS if tok in middle]


def suffix_probe(suffix: str) -> str | None:
    """The start of the suffix's first non-empty line, stripped (None when the suffix is blank)."""
    for line in suffix.splitlines():
        if line.strip():
            return line.strip()[:_PROBE_CHARS]
    return None


def runs_past_suffix(middle: str, suffix: str) -> bool:
    """True when the middle contains, or ends with the beginning of, the suffix's first line.

    "Contains": a line of the middle starts with the probe. "Ends with": the middle's last
    line is a cut-off start of the probe (at least a few characters, so `r` is not a match).
    """
    probe = suffix_probe(suffix)
    if probe is None:
        return False
    lines = [line.strip() for line in middle.splitlines() if line.strip()]
    if any(line.startswith(probe) for line in lines):
        return True
    tail = lines[-1] if lines else ""
    return len(tail) >= min(len(probe), _MIN_TAIL_CHARS) and probe.startswith(tail)


def mangled_reasons(middle: str, suffix: str) -> list[str]:
    """Why `middle` is mangled (empty when it is clean)."""
    reasons = [f"control token {tok}" for tok in control_tokens_in(middle)]
    if runs_past_suffix(middle, suffix):
        reasons.append("runs on past the suffix")
    return reasons
