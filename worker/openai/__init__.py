"""The OpenAI API onto Ollama, as pure functions (no HTTP).

In the style of Ollama's own `openai/openai.go`, and past it where an agent needs more:

- `request`: an OpenAI chat body, the agent and its model's capabilities in, the Ollama
  `/api/chat` body out (or an `InvalidRequest` naming the field at fault);
- `messages` and `tools`: the parts of that mapping for messages and for tools;
- `chunks`: Ollama's streamed messages in, OpenAI's `chat.completion.chunk` SSE events out,
  every line kept under go-livepeer's 64 KiB scanner limit;
- `completion`: the whole (non-streamed) `chat.completion`;
- `capabilities`: what a model can do, from the sampler's published catalogue;
- `embeddings` and `models`: `/v1/embeddings` onto Ollama's `/api/embed`, and `/v1/models`.
"""
