"""FIM prompt formats per model family (CONTRACTS.md §3).

The client formats the prompt itself and sends it to `/v1/completions` without `suffix`
(vLLM rejects `suffix`); the family's stop strings end the middle. A request carries at most
four of them (`request_stops`): vLLM, like the OpenAI API, refuses a longer `stop` list.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, model_validator

# vLLM's VLLM_MAX_STOP_STRINGS default and the OpenAI API's limit: more answers 400.
MAX_STOP_STRINGS = 4


class RepoFile(BaseModel):
    """One file of repository-level context, shown to the model before the current file."""

    model_config = ConfigDict(frozen=True)

    path: str
    content: str


class FimFamily(BaseModel):
    """A family's control tokens, stop strings and whether it has a repository-level format."""

    model_config = ConfigDict(frozen=True)

    name: str
    prefix_token: str
    suffix_token: str
    middle_token: str
    stops: tuple[str, ...]
    # Tokens that must never appear in a returned middle (stops plus the format's own tokens).
    control_tokens: tuple[str, ...]
    repo_level: bool = False
    # The stops sent with a request when `stops` has more than MAX_STOP_STRINGS (a subset).
    wire_stops: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _sendable_stops(self) -> FimFamily:
        sent = self.request_stops
        if len(sent) > MAX_STOP_STRINGS:
            raise ValueError(f"FIM family {self.name}: a request may carry at most "
                             f"{MAX_STOP_STRINGS} stop strings; set wire_stops")
        if not set(sent) <= set(self.stops):
            raise ValueError(f"FIM family {self.name}: wire_stops must be among its stops")
        return self

    @property
    def request_stops(self) -> tuple[str, ...]:
        """The `stop` list of a request; the other stops are control tokens the hygiene check flags."""
        return self.wire_stops or self.stops

    def prompt(self, prefix: str, suffix: str) -> str:
        if self.name == "codellama":  # CodeLlama's format carries spaces around the prefix
            return f"{self.prefix_token} {prefix} {self.suffix_token}{suffix} {self.middle_token}"
        return f"{self.prefix_token}{prefix}{self.suffix_token}{suffix}{self.middle_token}"


_QWEN_STOPS = (
    "<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<|im_start|>", "<|im_end|>",
)
QWEN = FimFamily(
    name="qwen2.5-coder", prefix_token="<|fim_prefix|>", suffix_token="<|fim_suffix|>",
    middle_token="<|fim_middle|>", stops=_QWEN_STOPS, control_tokens=_QWEN_STOPS, repo_level=True,
    # End of text (also the engine's EOS), the next file of a repository, and a new FIM
    # sequence starting: what a base model emits once the hole is filled.
    wire_stops=("<|endoftext|>", "<|file_sep|>", "<|fim_prefix|>", "<|fim_middle|>"),
)
STARCODER = FimFamily(
    name="starcoder2", prefix_token="<fim_prefix>", suffix_token="<fim_suffix>",
    middle_token="<fim_middle>", stops=("<|endoftext|>", "<file_sep>"),
    control_tokens=(
        "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>", "<|endoftext|>",
        "<file_sep>", "<repo_name>", "<filename>",
    ),
)
CODELLAMA = FimFamily(
    name="codellama", prefix_token="<PRE>", suffix_token="<SUF>", middle_token="<MID>",
    stops=("<EOT>",), control_tokens=("<PRE>", "<SUF>", "<MID>", "<EOT>"),
)
DEEPSEEK = FimFamily(
    name="deepseek-coder", prefix_token="<｜fim▁begin｜>", suffix_token="<｜fim▁hole｜>",
    middle_token="<｜fim▁end｜>", stops=("<｜end▁of▁sentence｜>",),
    control_tokens=("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", "<｜end▁of▁sentence｜>"),
)

# The catalog's `fim_family` values; "starcoder" and "qwen2.5" share a format with their kin.
FAMILIES: dict[str, FimFamily] = {
    "qwen2.5-coder": QWEN,
    "qwen2.5": QWEN,
    "starcoder2": STARCODER,
    "starcoder": STARCODER,
    "codellama": CODELLAMA,
    "deepseek-coder": DEEPSEEK,
}

# Every family's control tokens: a middle holding any of them was mangled, whatever the family.
ALL_CONTROL_TOKENS: tuple[str, ...] = tuple(
    dict.fromkeys(tok for fam in (QWEN, STARCODER, CODELLAMA, DEEPSEEK) for tok in fam.control_tokens)
)


def family(name: str) -> FimFamily:
    """The family for a catalog `fim_family` value (case-insensitive)."""
    found = FAMILIES.get(name.strip().lower())
    if found is None:
        raise ValueError(f"unknown fim_family {name!r}; known: {', '.join(sorted(FAMILIES))}")
    return found


def stop_tokens(name: str) -> list[str]:
    """The family's stop strings (CONTRACTS.md §3)."""
    return list(family(name).stops)


def request_stop_tokens(name: str) -> list[str]:
    """The `stop` list a request of this family carries (at most MAX_STOP_STRINGS)."""
    return list(family(name).request_stops)


def build_fim_prompt(
    name: str,
    prefix: str,
    suffix: str,
    *,
    repo: str | None = None,
    path: str | None = None,
    context_files: Sequence[RepoFile] = (),
) -> str:
    """The `/v1/completions` prompt for a hole between `prefix` and `suffix`.

    With `repo` (Qwen only) the prompt is repository-level: the repo name, each context file
    after `<|file_sep|>{path}`, then the current file `path` holding the FIM prompt.
    """
    fam = family(name)
    if repo is None:
        if context_files:
            raise ValueError("context_files need a repo name")
        return fam.prompt(prefix, suffix)
    if not fam.repo_level:
        raise ValueError(f"fim_family {fam.name!r} has no repository-level format")
    if not path:
        raise ValueError(f"repository-level prompt for repo {repo!r} needs the current file's path")
    parts = [f"<|repo_name|>{repo}\n"]
    parts += [f"<|file_sep|>{f.path}\n{f.content}\n" for f in context_files]
    parts.append(f"<|file_sep|>{path}\n{fam.prompt(prefix, suffix)}")
    return "".join(parts)
