"""embeddings: registered at the gateway, correct vectors, and a budget that binds."""
