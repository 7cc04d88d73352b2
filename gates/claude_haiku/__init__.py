"""claude-haiku: usage normalization of an external provider behind the OpenAI facade."""
