"""One builder for the serving command line, shared by the Kubernetes and the local deployer."""

from __future__ import annotations

from collections.abc import Iterable

from deploy.catalog import AliasEntry

# Flags whose value is the next argument: needed to drop or override a flag together with its value.
_VALUED = {
    "--quantization",
    "--max-model-len",
    "--tool-call-parser",
    "--served-model-name",
    "--host",
    "--port",
    "--max-client-batch-size",
    "--runner",
    "--dtype",
    "--max-num-seqs",
    "--revision",
    "--model",
    "--model_dir",
}


def _without(args: list[str], flags: Iterable[str]) -> list[str]:
    flags = set(flags)
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in flags:
            skip = "=" not in arg and name in _VALUED
            continue
        out.append(arg)
    return out


def vllm_args(
    entry: AliasEntry,
    *,
    model: str,
    port: int,
    host: str = "0.0.0.0",
    drop: Iterable[str] = (),
    override: dict[str, str] | None = None,
    extra: Iterable[str] = (),
    revision: str | None = None,
) -> list[str]:
    """Arguments for `vllm serve` (the image's entrypoint) for one alias.

    `drop` removes catalog flags a stand-in cannot honour (an AWQ flag for unquantized weights);
    `override` replaces a flag's value (a smaller context on the CPU); `revision` pins the Hub
    commit when `model` is a Hub id.
    """
    override = override or {}
    args = _without(list(entry.serve_args), [*drop, *override])
    for flag, value in override.items():
        args += [flag, value]
    return [
        model,
        "--served-model-name",
        entry.served_model_name,
        *(["--revision", revision] if revision else []),
        *args,
        *extra,
        "--host",
        host,
        "--port",
        str(port),
    ]


def tei_args(
    entry: AliasEntry, *, model: str, port: int, host: str = "0.0.0.0", revision: str | None = None
) -> list[str]:
    """Arguments for text-embeddings-inference's router (`--revision` pins a Hub commit)."""
    pinned = ["--revision", revision] if revision else []
    return ["--model-id", model, *pinned, "--hostname", host, "--port", str(port),
            *entry.serve_args]


def runtime_extra_args(entry: AliasEntry) -> list[str]:
    """Flags a KServe runtime adds to its own: the served name and the catalog's engine flags,
    never the model location, host or port (the runtime sets those; its args are appended)."""
    return ["--served-model-name", entry.served_model_name,
            *_without(list(entry.serve_args), ["--host", "--port", "--model", "--model_dir"])]
