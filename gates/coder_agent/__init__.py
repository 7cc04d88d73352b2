"""coder-agent: autonomous tool loops through a budgeted virtual key, both streamed and not."""
