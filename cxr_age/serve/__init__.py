"""`cxr-age-serve`: a web page and a JSON API over a trained model (`app`), the service behind them
(`service`), the batching queue (`batcher`), the streaming upload parser (`uploads`) and their limits
(`limits`). Needs the `serve` extra (FastAPI, uvicorn, python-multipart)."""
