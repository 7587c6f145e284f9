"""A fake news API on 127.0.0.1 in the Stock News API's wire format (``{"data": [...], "total_pages": N}``,
``?tickers=&items=&page=&days=&type=&token=``), with scripted faults: 429, a slow answer (timeout), garbage."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


def article(symbol: str, i: int, sentiment: str = "Positive") -> dict[str, Any]:
    return {"news_url": f"https://news.example/{symbol}/{i}", "image_url": "", "title": f"{symbol} headline {i}",
            "text": f"{symbol} text {i}", "source_name": "Barrons", "date": "Sun, 14 Feb 2021 07:00:00 -0500",
            "topics": [], "sentiment": sentiment, "type": "Article", "tickers": [symbol]}


class FakeNewsServer:
    def __init__(self, articles: dict[str, list[dict[str, Any]]], token: str = "news-secret-token") -> None:
        self.articles = articles
        self.token = token
        self.faults: list[str] = []  # "429", "slow", "garbage", "500": one per request, in order
        self.slow_seconds = 1.0
        self.requests: list[dict[str, list[str]]] = []
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/v1"

    def __enter__(self) -> FakeNewsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler(fake: FakeNewsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_GET(self) -> None:  # noqa: N802
            query = parse_qs(urlparse(self.path).query)
            with fake.lock:
                fake.requests.append(query)
                fault = fake.faults.pop(0) if fake.faults else None
            if fault == "slow":
                time.sleep(fake.slow_seconds)
            elif fault in ("429", "500"):
                return self._send(int(fault), b'{"message": "Too many requests"}')
            elif fault == "garbage":
                return self._send(200, b"<html>upstream proxy error</html>")
            if query.get("token") != [fake.token]:
                return self._send(403, b'{"message": "invalid token"}')
            items, page = int(query["items"][0]), int(query["page"][0])
            found = fake.articles.get(query["tickers"][0], [])
            pages = max(1, -(-len(found) // items))
            body = {"data": found[(page - 1) * items: page * items], "total_pages": pages}
            self._send(200, json.dumps(body).encode())

    return Handler
