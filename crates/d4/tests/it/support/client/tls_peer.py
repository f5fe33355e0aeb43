#!/usr/bin/env python3
"""Stand-in collectors for the `d4 client` close and framing tests: Python's `ssl` (OpenSSL
defaults: TLS 1.3, two session tickets sent after the handshake), standard library only.

usage: tls_peer.py MODE CERT KEY CONNS [ARG...]

Listens on 127.0.0.1 (port chosen by the OS), prints `port N` and serves CONNS connections
one after the other, printing one JSON object per connection. Exits when done or when its
stdin closes (the test went away).

Modes:
  slow RECV SLEEP   reads RECV bytes per recv() and sleeps SLEEP seconds after every read,
                    decoding the D4 stream; reports the frames, payload bytes, payload
                    SHA-256, whether the stream ended inside a frame and any error.
  d4core            parses like d4-core's server.py (Twisted, one dataReceived per TLS
                    record): a read shorter than the 62-byte header while a partial frame is
                    pending is only buffered, not parsed, until a longer read comes. Reports
                    the frames and payload it processed, plus the size of every read.
  silent            completes the handshake, reads everything, and never closes nor sends
                    anything: the client's close is never confirmed. Holds the connection
                    until stdin closes.
"""
import hashlib
import json
import select
import socket
import ssl
import sys
import threading
import time

HEADER = 62


def frame_size(hdr):
    return int.from_bytes(hdr[58:62], "little")


class Stream:
    """Whole-frame D4 decoder (the correct one)."""

    def __init__(self):
        self.buf = bytearray()
        self.frames = 0
        self.payload = 0
        self.sha = hashlib.sha256()

    def feed(self, data):
        self.buf += data
        while len(self.buf) >= HEADER:
            n = frame_size(self.buf)
            if len(self.buf) < HEADER + n:
                break
            self.sha.update(self.buf[HEADER:HEADER + n])
            self.frames += 1
            self.payload += n
            del self.buf[:HEADER + n]


class D4Core:
    """The buffering of d4-core's D4_Server.process_header (only what decides which bytes
    get processed; header checks and HMAC left out)."""

    def __init__(self):
        self.buffer = b""
        self.frames = 0
        self.payload = bytearray()

    def data_received(self, data):
        if not self.buffer:
            self.process(data)
        elif len(data) < HEADER:
            self.buffer += data  # kept for later, not parsed
        else:
            data = self.buffer + data
            self.buffer = b""
            self.process(data)

    def process(self, data):
        while True:
            if len(data) < HEADER:
                self.buffer += data
                return
            n = frame_size(data)
            if len(data) - HEADER < n:
                self.buffer += data
                return
            self.frames += 1
            self.payload += data[HEADER:HEADER + n]
            data = data[HEADER + n:]
            if not data:
                return


def serve_slow(conn, recv, sleep):
    st = Stream()
    err = None
    try:
        while True:
            d = conn.recv(recv)
            if not d:
                break
            st.feed(d)
            time.sleep(sleep)
    except (OSError, ssl.SSLError) as e:
        err = "{}: {}".format(type(e).__name__, e)
    return {
        "frames": st.frames,
        "payload": st.payload,
        "sha256": st.sha.hexdigest(),
        "torn": len(st.buf),
        "error": err,
    }


def serve_d4core(conn):
    p = D4Core()
    reads = []
    err = None
    try:
        while True:
            d = conn.recv(1 << 20)  # at most one TLS record per call
            if not d:
                break
            reads.append(len(d))
            p.data_received(d)
    except (OSError, ssl.SSLError) as e:
        err = "{}: {}".format(type(e).__name__, e)
    return {
        "frames": p.frames,
        "payload": p.payload.decode("latin-1"),
        "unprocessed": len(p.buffer),
        "reads": reads,
        "error": err,
    }


def serve_silent(conn, stop):
    total = 0
    conn.setblocking(False)
    while not stop.is_set():
        r, _, _ = select.select([conn], [], [], 0.1)
        if not r:
            continue
        try:
            d = conn.recv(1 << 16)
        except ssl.SSLWantReadError:
            continue
        except (OSError, ssl.SSLError):
            break
        if not d:
            # close_notify seen: a silent peer still neither answers nor closes
            while not stop.is_set():
                time.sleep(0.1)
            break
        total += len(d)
    return {"bytes": total}


def main():
    mode, cert, key, conns = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    args = sys.argv[5:]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    print("port {}".format(lsock.getsockname()[1]), flush=True)
    stop = threading.Event()

    def watch_stdin():
        sys.stdin.read()
        stop.set()
        lsock.close()

    threading.Thread(target=watch_stdin, daemon=True).start()
    for _ in range(conns):
        try:
            raw, _ = lsock.accept()
        except OSError:
            break
        raw.settimeout(60)
        try:
            conn = ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as e:
            print(json.dumps({"error": "handshake: {}".format(e)}), flush=True)
            raw.close()
            continue
        if mode == "slow":
            res = serve_slow(conn, int(args[0]), float(args[1]))
        elif mode == "d4core":
            res = serve_d4core(conn)
        elif mode == "silent":
            res = serve_silent(conn, stop)
        else:
            raise SystemExit("unknown mode " + mode)
        conn.close()
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
