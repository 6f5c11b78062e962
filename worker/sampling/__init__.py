"""Sampling: the sampler process that alone reads NVML and Ollama, and what it publishes.

`process` runs in its own process (one per container); `nvml` and `ollama_catalogue` are
its readers, `source` its per-source threads. `readings` and `published` are what the HTTP
workers import: the reading types and the shared readings file, without NVML or HTTP.
"""
