"""coder-fim: FIM over /v1/completions, direct and through a virtual key, filled holes executed."""
