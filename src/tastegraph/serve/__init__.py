"""The HTTP service: FastAPI app, routes, and the web page."""
