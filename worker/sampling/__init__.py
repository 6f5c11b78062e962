"""Sampling: the sampler process that alone reads NVML and Ollama, and what it publishes.

`process` runs in its own process (one per container); `nvml` and `ollama_catalogue` are
its readers (`gpu_health`, `xid_watch` and `verdict` behind `nvml`), `source` its
per-source threads. `readings`, `published` and `fitness` are what the HTTP workers import:
the reading types, the shared readings file and whether the GPUs can take work, without
NVML or HTTP.
"""
