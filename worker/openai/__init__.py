"""The OpenAI API <-> Ollama translation, as pure functions (no HTTP)."""
