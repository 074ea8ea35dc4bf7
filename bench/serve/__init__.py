"""`bench serve`: one measured variant behind an HTTP API (FastAPI on uvicorn), with optional dynamic
batching. `bench run`'s Server scenario (bench/scenarios/server.py) loads the same app.

spec.py     what to serve (ServeSpec), from a run directory, a child spec or an artifact folder
batcher.py  groups concurrent requests into one forward pass (max batch, max wait)
app.py      the routes: POST /predict, GET /health; validation with one-line 4xx messages
process.py  `python -m bench.serve.process SPEC.json`: uvicorn on a host/port or an inherited socket
"""
