"""Every FIM control token of every family is caught as mangling, wherever it sits in a middle.

The token lists below are written out from CONTRACTS.md §3 (prompt tokens and stops) plus the
other special tokens of each family's tokenizer, on purpose not read from evals.fim:
a token dropped from the module's lists must fail here.
"""

from __future__ import annotations

import difflib

import pytest

from evals.fim import (
    ALL_CONTROL_TOKENS,
    FAMILIES,
    FimCaseScore,
    FimScore,
    control_tokens_in,
    family,
    judge_fim,
    mangled_reasons,
    runs_past_suffix,
    suffix_probe,
)

CONTRACT_TOKENS: dict[str, tuple[str, ...]] = {
    "qwen2.5-coder": (
        "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>", "<|endoftext|>",
        "<|repo_name|>", "<|file_sep|>", "<|im_start|>", "<|im_end|>",
    ),
    "starcoder2": (
        "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>", "<|endoftext|>",
        "<file_sep>", "<repo_name>", "<filename>",
    ),
    "codellama": ("<PRE>", "<SUF>", "<MID>", "<EOT>"),
    "deepseek-coder": (
        "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", "<｜end▁of▁sentence｜>",
    ),
}
CASES = [(name, tok) for name, tokens in CONTRACT_TOKENS.items() for tok in tokens]
SUFFIX = "\n    return total\n"


@pytest.mark.parametrize(("fim_family", "token"), CASES)
@pytest.mark.parametrize("where", ["start", "inside", "end", "alone"])
def test_every_control_token_is_mangling(fim_family: str, token: str, where: str) -> None:
    middle = {
        "start": f"{token}    total = sum(xs)\n",
        "inside": f"    total = 0{token}\n    total += 1\n",
        "end": f"    total = sum(xs)\n{token}",
        "alone": token,
    }[where]
    reasons = mangled_reasons(middle, SUFFIX)
    assert f"control token {token}" in reasons, (fim_family, token, reasons)


@pytest.mark.parametrize(("fim_family", "token"), CASES)
def test_each_familys_own_list_holds_the_token(fim_family: str, token: str) -> None:
    assert token in family(fim_family).control_tokens
    assert token in ALL_CONTROL_TOKENS


@pytest.mark.parametrize("fim_family", sorted(FAMILIES))
def test_prompt_tokens_and_stops_are_control_tokens(fim_family: str) -> None:
    fam = family(fim_family)
    for token in (fam.prefix_token, fam.suffix_token, fam.middle_token, *fam.stops):
        assert token in fam.control_tokens, (fim_family, token)
        assert mangled_reasons(f"x = 1{token}", SUFFIX) == [f"control token {token}"]


def test_a_clean_middle_has_no_reason() -> None:
    assert control_tokens_in("    total = sum(xs)\n") == []
    assert mangled_reasons("    total = sum(xs)\n", SUFFIX) == []
    # Lookalikes that are not tokens: a plain `<PRE` or `fim_prefix` in code is fine.
    assert mangled_reasons("    s = '<PRE' + 'fim_prefix|>'\n", SUFFIX) == []


def test_every_token_in_one_middle_is_named_once_each() -> None:
    tokens = list(dict.fromkeys(tok for _, tok in CASES))
    reasons = mangled_reasons("".join(tokens), SUFFIX)
    assert sorted(reasons) == sorted(f"control token {tok}" for tok in tokens)


def test_token_and_run_on_are_both_reasons() -> None:
    reasons = mangled_reasons("    total = 0<EOT>\n    return total\n", SUFFIX)
    assert reasons == ["control token <EOT>", "runs on past the suffix"]


# ---- the suffix run-on check at its boundaries ------------------------------------------------

def test_suffix_probe_is_the_first_non_blank_line_cut_at_40() -> None:
    long_line = "    return " + "x" * 60
    assert suffix_probe(f"\n  \n{long_line}\nmore\n") == long_line.strip()[:40]
    assert len(suffix_probe(long_line) or "") == 40
    assert suffix_probe("\n   \n\t\n") is None
    assert suffix_probe("") is None


def test_run_on_matches_on_the_first_40_characters_only() -> None:
    suffix = "    return " + "a" * 50 + "\n"
    probe = ("return " + "a" * 50)[:40]
    assert runs_past_suffix(f"    x = 1\n    {probe}ZZZ\n", suffix)  # differs after char 40
    assert not runs_past_suffix(f"    x = 1\n    {probe[:-1]}Z\n", suffix)


def test_cut_off_tail_needs_six_characters() -> None:
    suffix = "\n    return total\n"
    assert runs_past_suffix("    total = 0\n    return", suffix)  # 6 characters: "return"
    assert not runs_past_suffix("    total = 0\n    retur", suffix)  # 5: too little to tell
    # A probe shorter than six characters: the whole probe is enough.
    assert runs_past_suffix("    x = 1\n    pass", "\n    pass\n")
    assert not runs_past_suffix("    x = 1\n    pas", "\n    pass\n")


def test_a_middle_line_elsewhere_starting_with_the_probe_is_a_run_on() -> None:
    assert runs_past_suffix("    return total\n    total = 0\n", SUFFIX)
    assert not runs_past_suffix("    x = 'return total'\n", SUFFIX)
    assert not runs_past_suffix("", SUFFIX)


# ---- a mangled case counts against the gate's mangled-rate bound --------------------------------

def _score(mangled: int, total: int = 10) -> FimScore:
    cases = [
        FimCaseScore(case_id=f"c{i}", kind="single", answered=True, functional=True,
                     mangled=i < mangled, mangled_reasons=["control token <EOT>"] if i < mangled else [])
        for i in range(total)
    ]
    return FimScore(label="direct", model="m", cases=cases)


def test_mangled_rate_exactly_on_the_bound_passes_and_one_more_fails() -> None:
    assert judge_fim(_score(2), 0.5, 0.2).verdict == "pass"  # 2/10 = 0.2, not > 0.2
    over = judge_fim(_score(3), 0.5, 0.2)
    assert over.verdict == "fail" and "mangled 3/10" in over.reason
    assert judge_fim(_score(1, total=1), 0.5, 0.0).verdict == "fail"
    assert judge_fim(_score(0, total=1), 0.5, 0.0).verdict == "pass"


# ---- scoring one returned middle: functional by the checker, mangled by hygiene ----------------

def _cases():
    from pathlib import Path

    from evals.fim import load_fim_cases

    return load_fim_cases(Path(__file__).resolve().parent.parent / "fixtures" / "fim_cases.json",
                          "qwen2.5-coder")[:3]


def test_scoring_uses_the_checker_and_hygiene_per_case() -> None:
    from types import SimpleNamespace

    from evals.fim import FimCallResult, FimRun, score_fim

    cases = _cases()
    seen: list[str] = []

    def checker(problem, completion):
        seen.append(completion)
        return SimpleNamespace(status="passed" if completion.startswith(cases[0].middle) else "failed")

    results = [
        FimCallResult(case_id=cases[0].case_id, answered=True, middle=cases[0].middle + "  \n\n"),
        FimCallResult(case_id=cases[1].case_id, answered=True, middle="<|fim_pad|>" + cases[1].middle),
        FimCallResult(case_id=cases[2].case_id, answered=False, error="timeout"),
    ]
    score = score_fim(FimRun(label="vkey", model="m", fim_family="qwen2.5-coder", results=results),
                      cases, checker=checker)
    first, second, third = score.cases
    assert (first.answered, first.functional, first.check_status, first.exact_match) == (
        True, True, "passed", True)  # trailing blanks do not spoil an exact match
    assert first.mangled is False and first.mangled_reasons == []
    # difflib's ratio against the true middle, to four places: the trailing blanks cost a little.
    ratio = difflib.SequenceMatcher(None, results[0].middle, cases[0].middle).ratio()
    assert first.edit_similarity == round(ratio, 4) < 1.0
    assert (second.functional, second.check_status, second.exact_match) == (False, "failed", False)
    assert second.mangled and second.mangled_reasons == ["control token <|fim_pad|>"]
    assert (third.answered, third.functional, third.check_status) == (False, False, None)
    assert seen == [results[0].middle + cases[0].suffix, results[1].middle + cases[1].suffix]
    assert (score.total, score.answered, score.functional, score.mangled, score.exact) == (3, 2, 1, 1, 1)


def test_unknown_case_in_a_run_is_named() -> None:
    from evals.fim import FimCallResult, FimRun, score_fim

    run = FimRun(label="vkey", model="m", fim_family="qwen2.5-coder",
                 results=[FimCallResult(case_id="nope", answered=False)])
    with pytest.raises(ValueError, match="run 'vkey' has results for unknown cases: nope"):
        score_fim(run, _cases(), checker=lambda p, c: None)


def test_fim_reasons_and_status_in_full() -> None:
    score = _score(0, total=4)
    passed = judge_fim(score, 0.5, 0.25)
    assert passed.status == "FIM /v1/completions 200 (direct), functional 4/4 [95% CI 51-100%]"
    assert passed.reason == "functional 4/4 >= 50%, mangled 0/4, exact 0/4, edit similarity 0.00"
    mangled = judge_fim(_score(2, total=4), 0.5, 0.25)
    assert mangled.status == ("FIM /v1/completions 200 (direct), functional 4/4 [95% CI 51-100%], "
                              "mangled 2/4 [95% CI 15-85%]")
    assert mangled.reason == ("mangled 2/4 (50% > 25%): an instruct model or a chat template in "
                              "the path")
    with pytest.raises(ValueError, match="has no cases to judge"):
        judge_fim(FimScore(label="x", model="m", cases=[]), 0.5, 0.5)


def test_unanswered_or_empty_results_are_not_scored_and_indentation_counts() -> None:
    from types import SimpleNamespace

    from evals.fim import FimCallResult, FimRun, score_fim

    cases = _cases()
    shifted = "\n".join("  " + line for line in cases[1].middle.splitlines())
    results = [
        FimCallResult(case_id=cases[0].case_id, answered=False, middle=cases[0].middle),
        FimCallResult(case_id=cases[1].case_id, answered=True, middle=shifted),
        FimCallResult(case_id=cases[2].case_id, answered=True, middle=cases[2].middle + "abc"),
    ]
    score = score_fim(FimRun(label="vkey", model="m", fim_family="qwen2.5-coder", results=results),
                      cases, checker=lambda p, c: SimpleNamespace(status="failed"))
    assert score.cases[0].answered is False and score.cases[0].check_status is None
    assert score.cases[1].exact_match is False  # indentation is part of the code
    ratio = difflib.SequenceMatcher(None, results[2].middle, cases[2].middle).ratio()
    assert score.cases[2].edit_similarity == round(ratio, 4) != ratio
