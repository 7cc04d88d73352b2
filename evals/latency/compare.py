"""The same benchmark against two endpoints serving the same model (raw vLLM versus the KServe
modelcar), interleaved A, B, A, B in one run so that drift of the machine hits both alike.

Ratios are B over A: above 1 means B is slower.

    python -m evals.latency.compare --a raw=http://qwen-raw/v1 --b kserve=http://qwen-oci/v1 \
        --model qwen2.5-0.5b-instruct --requests 40
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import httpx
from openai import APIConnectionError, APIStatusError, OpenAI
from rich.console import Console
from rich.table import Table

from evals.latency._models import (
    ComparisonRow,
    LatencyComparison,
    PromptSet,
    PromptSetError,
    load_prompt_set,
)
from evals.latency._run import Endpoint, Job, StreamSettings, new_run_id, run_jobs, utc_now, warm_up
from evals.latency._stats import summarize

_PERCENTILES = ("p50", "p90", "p95", "p99")


def compare_endpoints(
    endpoint_a: Endpoint,
    endpoint_b: Endpoint,
    prompts: PromptSet,
    *,
    max_tokens: int,
    requests: int | None = None,
    concurrency: int = 1,
    warmup: int = 2,
    progress: bool = True,
    timeout_s: float = 60.0,
    temperature: float = 0.0,
    extra_body: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> LatencyComparison:
    """`requests` per endpoint (default: the prompt count), dispatched A, B, A, B, ...

    Both endpoints get the same prompt at the same step. With `concurrency` 1 the arrival order
    is exactly the dispatch order; above 1 the dispatch order still alternates. Each summary's
    throughput is over the run's shared wall time.
    """
    if endpoint_a.label == endpoint_b.label:
        raise ValueError(f"compare_endpoints: both endpoints are labelled {endpoint_a.label!r}")
    count = requests or len(prompts.prompts)
    if count < 1:
        raise ValueError(f"compare_endpoints: requests must be >= 1, got {requests}")
    settings = StreamSettings(max_tokens=max_tokens, timeout_s=timeout_s, temperature=temperature,
                              extra_body=extra_body)
    run_id = run_id or new_run_id()
    warm_up([endpoint_a, endpoint_b], prompts.prompts, warmup, settings)
    items = prompts.prompts
    jobs = [
        Job(index=2 * i + side, endpoint=endpoint, prompt=items[i % len(items)])
        for i in range(count)
        for side, endpoint in enumerate((endpoint_a, endpoint_b))
    ]
    started_at = utc_now()
    rows, wall = run_jobs(jobs, run_id=run_id, concurrency=concurrency, settings=settings,
                          progress=progress, description="latency A/B")
    kind = "sequential" if concurrency == 1 else "concurrent"
    results = [
        summarize(
            [row for row in rows if row.endpoint == endpoint.label], run_id=run_id,
            endpoint=endpoint.label, model=endpoint.model, prompt_set=prompts.name, profile=kind,
            concurrency=concurrency, max_tokens=max_tokens, warmup=warmup, started_at=started_at,
            duration_s=wall,
        )
        for endpoint in (endpoint_a, endpoint_b)
    ]
    a, b = results
    table_rows = []
    for metric in ("ttft", "itl", "e2e"):
        stats_a = getattr(a.summary, f"{metric}_ms")
        stats_b = getattr(b.summary, f"{metric}_ms")
        for name in _PERCENTILES:
            va = getattr(stats_a, name) if stats_a is not None else None
            vb = getattr(stats_b, name) if stats_b is not None else None
            ratio = round(vb / va, 4) if va and vb is not None else None
            table_rows.append(ComparisonRow(metric=metric, percentile=name, a_ms=va, b_ms=vb,
                                            ratio_b_over_a=ratio))
    return LatencyComparison(run_id=run_id, a=a, b=b, rows=table_rows,
                             order=[row.endpoint for row in rows])


def comparison_table(comparison: LatencyComparison) -> Table:
    """The comparison as a rich Table: one line per metric and percentile, with B/A."""
    a, b = comparison.a.summary, comparison.b.summary
    table = Table(
        title=f"Latency {a.endpoint} vs {b.endpoint} (run {comparison.run_id})",
        caption=(
            f"{a.endpoint}: {a.ok}/{a.requests} ok; {b.endpoint}: {b.ok}/{b.requests} ok; "
            f"concurrency {a.concurrency}, max_tokens {a.max_tokens}. Percentiles: {a.percentile_method}"
        ),
    )
    table.add_column("metric")
    table.add_column("percentile")
    table.add_column(f"{a.endpoint} (ms)", justify="right")
    table.add_column(f"{b.endpoint} (ms)", justify="right")
    table.add_column(f"{b.endpoint}/{a.endpoint}", justify="right")
    for row in comparison.rows:
        table.add_row(
            row.metric.upper(), row.percentile, _fmt(row.a_ms), _fmt(row.b_ms),
            "n/a" if row.ratio_b_over_a is None else f"{row.ratio_b_over_a:.2f}x",
        )
    return table


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


# --- command line ------------------------------------------------------------------------------

def _endpoint_arg(text: str) -> tuple[str, str]:
    label, sep, url = text.partition("=")
    if not sep or not label or not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"expected LABEL=URL (an OpenAI base URL), got {text!r}")
    return label, url


def _shown(url: str) -> str:
    """The URL as printed: without userinfo (a password in a URL must not reach a log)."""
    return str(httpx.URL(url).copy_with(username=None, password=None))


def unreachable(label: str, url: str, client: OpenAI) -> str | None:
    """One line when the endpoint does not answer at all (GET /models), else None.

    An endpoint that answers, even with an error status, is measured: its errors are counted.
    """
    try:
        client.with_options(timeout=10).models.list()
    except APIConnectionError as exc:
        cause = exc.__cause__ or exc
        return f"endpoint {label} ({_shown(url)}) unreachable: {type(cause).__name__}: {cause}"
    except APIStatusError:
        return None
    return None


def all_failed(comparison: LatencyComparison, urls: dict[str, str]) -> str | None:
    """One line when every measured request of an endpoint failed (its column would be n/a)."""
    for result in (comparison.a, comparison.b):
        summary = result.summary
        if summary.requests and not summary.ok:
            example = summary.error_examples[0] if summary.error_examples else "no detail"
            return (f"every request to endpoint {summary.endpoint} ({_shown(urls[summary.endpoint])}) "
                    f"failed ({summary.errors}/{summary.requests}), e.g. {example}")
    return None


def main(argv: list[str] | None = None) -> int:
    """`python -m evals.latency.compare --a raw=URL --b kserve=URL --model NAME`: the comparison
    table on stdout. The API key comes from env OPENAI_API_KEY (default: none needed)."""
    parser = argparse.ArgumentParser(
        prog="python -m evals.latency.compare",
        description="The same streamed benchmark against two endpoints serving the same model, "
        "requests alternating A, B; each percentile side by side with the ratio B/A.",
    )
    parser.add_argument("--a", type=_endpoint_arg, required=True, metavar="LABEL=URL")
    parser.add_argument("--b", type=_endpoint_arg, required=True, metavar="LABEL=URL")
    parser.add_argument("--model", required=True, help="the served model name at A (and at B)")
    parser.add_argument("--model-b", default=None, help="B's served name, when it differs")
    parser.add_argument("--prompts", type=Path, default=None, help="prompt set JSON (default: the shipped set)")
    parser.add_argument("--requests", type=int, default=None, help="per endpoint (default: the prompt count)")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also save the comparison as JSON")
    args = parser.parse_args(argv)
    prompts_path = args.prompts or Path(__file__).resolve().parents[2] / "fixtures" / "latency_prompts.json"
    try:
        prompts = load_prompt_set(prompts_path)
    except PromptSetError as exc:
        parser.error(str(exc))
    key = os.environ.get("OPENAI_API_KEY") or "not-needed"
    (label_a, url_a), (label_b, url_b) = args.a, args.b
    client_a = OpenAI(base_url=url_a, api_key=key, max_retries=0)
    client_b = OpenAI(base_url=url_b, api_key=key, max_retries=0)
    for label, url, client in ((label_a, url_a, client_a), (label_b, url_b, client_b)):
        problem = unreachable(label, url, client)
        if problem:  # a table of n/a would hide which endpoint and why
            print(f"latency_compare: {problem}", file=sys.stderr)
            return 2
    comparison = compare_endpoints(
        Endpoint(label=label_a, client=client_a, model=args.model),
        Endpoint(label=label_b, client=client_b, model=args.model_b or args.model),
        prompts, max_tokens=args.max_tokens, requests=args.requests, concurrency=args.concurrency,
        warmup=args.warmup,
    )
    problem = all_failed(comparison, {label_a: url_a, label_b: url_b})
    if problem:
        print(f"latency_compare: {problem}", file=sys.stderr)
        return 1
    Console(width=max(120, Console().width)).print(comparison_table(comparison))
    if args.json:
        args.json.write_text(comparison.model_dump_json(indent=2), encoding="utf-8")
    failed = comparison.a.summary.errors + comparison.b.summary.errors
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
