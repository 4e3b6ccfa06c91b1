"""Runs inside a network namespace whose ephemeral port range holds a handful of
ports (see tests/integration/test_faults_ports.py): an echo backend, the real
switchyard, and clients bound to fixed ports outside that range. Opens
connections until the daemon's upstream connects run out of ports, then prints
one JSON object with what happened. Bounded in count and time."""

import json
import os
import socket
import subprocess
import sys
import threading
import time

BACKEND_PORT = 18001
PROXY_PORT = 18002
ADMIN_SOCKET_NAME = "admin.sock"


def echo_backend():
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", BACKEND_PORT))
    listener.listen(64)

    def serve(conn):
        with conn:
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                conn.sendall(data)

    def accept_loop():
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()


def admin(path, command):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)


def client(port):
    """A client bound to a fixed source port outside the ephemeral range."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.settimeout(3)
    s.connect(("127.0.0.1", PROXY_PORT))
    return s


def main():
    binary, workdir, engine = sys.argv[1], sys.argv[2], sys.argv[3]
    echo_backend()
    sock_path = os.path.join(workdir, ADMIN_SOCKET_NAME)
    config = os.path.join(workdir, "switchyard.yaml")
    with open(config, "w") as f:
        f.write(f"""admin: {{socket: "{sock_path}"}}
state_file: ""
workers: 1
engine: {engine}
shutdown_grace: 1s
services:
  - name: web
    listen: 127.0.0.1:{PROXY_PORT}
    retries: 0
    health: {{type: tcp, interval: 60s, timeout: 1s}}
    pools:
      blue: [ {{address: 127.0.0.1:{BACKEND_PORT}}} ]
""")
    log = open(os.path.join(workdir, "switchyard.stderr"), "wb")
    daemon = subprocess.Popen([binary, "-c", config], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    result = {"served": 0, "refused": 0}
    held = []
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                admin(sock_path, "status")
                break
            except OSError:
                time.sleep(0.05)
        # Hold connections open until the upstream side runs out of source ports.
        for i in range(40):
            s = client(20000 + i)
            s.sendall(b"ping")
            try:
                got = s.recv(4)
            except (ConnectionResetError, socket.timeout):
                got = b""
            if got == b"ping":
                result["served"] += 1
                held.append(s)
            else:
                result["refused"] += 1
                s.close()
                if result["refused"] >= 3:
                    break
        backend = admin(sock_path, "status web")["services"][0]["pools"]["blue"]["backends"][0]
        result["during"] = {k: backend.get(k) for k in ("health", "ejected", "ejections", "connect_failures")}
        result["fallback"] = admin(sock_path, "status web")["services"][0]["fallback"]["active"]
        for s in held:
            s.close()
        held = []
        # Ports come back: the next connection is served again.
        deadline = time.monotonic() + 10
        result["recovered"] = False
        port = 20100
        while time.monotonic() < deadline and not result["recovered"]:
            s = client(port)
            port += 1
            s.sendall(b"pong")
            try:
                result["recovered"] = s.recv(4) == b"pong"
            except (ConnectionResetError, socket.timeout):
                time.sleep(0.2)
            s.close()
        result["engine"] = admin(sock_path, "status")["engine"]
    finally:
        for s in held:
            s.close()
        daemon.terminate()
        result["exit"] = daemon.wait(10)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
