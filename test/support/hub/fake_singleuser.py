"""A stand-in single-user server for hub tests: listens where JUPYTERHUB_SERVICE_URL says and answers
every GET with a small page naming the path, so a browser can be seen to land on /user/{name}/lab?...
It exits when its parent (the hub) goes away, so a killed hub leaves nothing behind."""
import http.server
import os
import threading
import time
from urllib.parse import urlparse

url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
parent = os.getppid()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"<!doctype html><title>fake lab</title><p id=path>{self.path}</p>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def watch_parent():
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


threading.Thread(target=watch_parent, daemon=True).start()
http.server.ThreadingHTTPServer((url.hostname, url.port), Handler).serve_forever()
