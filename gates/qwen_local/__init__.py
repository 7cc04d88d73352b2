"""qwen-local: the latency SLO gate (streamed chat through the gateway, each p95 against its target)."""
