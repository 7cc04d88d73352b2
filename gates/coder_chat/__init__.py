"""coder-chat: HumanEval through the gateway, executed in the sandbox, pass rate gated."""
