"""HTTP: the Flask app each gunicorn worker process serves.

`app` holds the routes, `errors` the JSON error answers, `capacity` the cross-process
job slots, `document` the /gpu-check document and `metrics` the Prometheus exposition.
Nothing here talks to NVML or Ollama: it serves the sampler's published readings.
"""
