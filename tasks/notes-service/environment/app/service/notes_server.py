#!/usr/bin/env python3
"""Serves text notes over HTTP.

GET /health          -> "ok"
GET /notes/NAME      -> contents of DATA_DIR/NAME.txt (needs header X-Token)
GET /notes           -> names of the notes, one per line (needs X-Token)
"""
import argparse
import configparser
import http.server
import logging
import os
import re
import sys


def load_config(path):
    cp = configparser.ConfigParser()
    if not cp.read(path):
        sys.exit(f"notes_server: cannot read config {path}")
    s = cp["server"]
    cfg = {
        "bind": s.get("bind", "127.0.0.1"),
        "port": s.getint("port"),
        "data_dir": s.get("data_dir"),
        "token_file": s.get("token_file"),
        "log_file": s.get("log_file", "notes_server.log"),
    }
    if not cfg["data_dir"] or not os.path.isdir(cfg["data_dir"]):
        sys.exit(f"notes_server: data_dir {cfg['data_dir']!r} is not a folder")
    if not cfg["token_file"] or not os.path.isfile(cfg["token_file"]):
        sys.exit(f"notes_server: token_file {cfg['token_file']!r} missing")
    return cfg


def make_handler(cfg):
    class Handler(http.server.BaseHTTPRequestHandler):
        def reply(self, code, body):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def authorized(self):
            with open(cfg["token_file"]) as f:
                token = f.read().strip()
            return self.headers.get("X-Token", "") == token

        def do_GET(self):
            if self.path == "/health":
                return self.reply(200, "ok\n")
            if self.path == "/notes" or self.path.startswith("/notes/"):
                if not self.authorized():
                    return self.reply(401, "unauthorized\n")
                name = self.path[len("/notes/"):]
                if not name:
                    names = sorted(f[:-4] for f in os.listdir(cfg["data_dir"]) if f.endswith(".txt"))
                    return self.reply(200, "".join(n + "\n" for n in names))
                if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
                    return self.reply(400, "bad note name\n")
                p = os.path.join(cfg["data_dir"], name + ".txt")
                if not os.path.isfile(p):
                    return self.reply(404, "no such note\n")
                with open(p) as f:
                    return self.reply(200, f.read())
            return self.reply(404, "not found\n")

        def log_message(self, fmt, *args):
            logging.info("%s %s", self.address_string(), fmt % args)

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    cfg = load_config(ap.parse_args().config)
    logging.basicConfig(filename=cfg["log_file"], level=logging.INFO, format="%(asctime)s %(message)s")
    srv = http.server.ThreadingHTTPServer((cfg["bind"], cfg["port"]), make_handler(cfg))
    logging.info("listening on %s:%d", cfg["bind"], cfg["port"])
    srv.serve_forever()


if __name__ == "__main__":
    main()
