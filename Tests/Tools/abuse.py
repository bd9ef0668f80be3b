#!/usr/bin/env python3
"""Issue 11's attacks against one spate-node with a token (used by cluster/bench-abuse).

For each attack: the node's RSS before, at peak and 2 s after; how many of the offending
connections the node closed and when (seconds after the attack started); and the latency of
legitimate Status and Query calls made on their own authenticated connection (in a separate
process, so the attackers' threads do not skew it) every 20 ms while the attack runs.
Prints one Markdown table row per attack.

  abuse.py --port PORT --token TOKEN --pid NODE_PID [--duration 20] [--only NAME,...]
"""
import argparse, multiprocessing, os, select, socket, struct, sys, threading, time

PREFACE = b"SPATE/1\n"
HEADERS, DATA, STATUS, CANCEL, PING, GOAWAY = 1, 2, 3, 4, 5, 6


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def field(n, b):
    return varint(n << 3 | 2) + varint(len(b)) + b


def frame(t, sid, payload=b"", flags=0):
    return struct.pack(">BBBBII", 1, t, flags, 0, sid, len(payload)) + payload


def headers(sid, method, token=None, timeout_ms=0, end=True, metadata=None):
    p = field(1, method.encode())
    if timeout_ms:
        p += varint(2 << 3) + varint(timeout_ms)
    md = metadata if metadata is not None else ([("authorization", "Bearer " + token)] if token else [])
    for k, v in md:
        p += field(3, field(1, k.encode()) + field(2, v.encode()))
    return frame(HEADERS, sid, p, 1 if end else 0)


TOTALS_15M = bytes.fromhex("0a0418a0f7366200")  # range { last_ms 900000 } totals {}


def watch_request(refresh_ms=1000):
    return field(1, TOTALS_15M) + varint(2 << 3) + varint(refresh_ms)


def read_exact(s, n):
    out = b""
    while len(out) < n:
        d = s.recv(n - len(out))
        if not d:
            raise EOFError
        out += d
    return out


def read_frame(s):
    h = read_exact(s, 12)
    _, t, fl, _, sid, ln = struct.unpack(">BBBBII", h)
    return t, fl, sid, read_exact(s, ln) if ln else b""


def connect(port, preface=True, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if preface:
        s.sendall(PREFACE)
        if read_exact(s, 8) != PREFACE:
            raise RuntimeError("no preface")
    return s


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------------------------------
# The legitimate client, in its own process.

def legit(port, token, stop, out):
    lat = {"Status": [], "Query": []}
    errors = 0
    sid = 1
    s = None
    while not stop.is_set():
        try:
            if s is None:
                s = connect(port)
            for method in ("Status", "Query"):
                t0 = time.perf_counter()
                if method == "Status":
                    s.sendall(headers(sid, "Status", token, timeout_ms=5000))
                else:
                    s.sendall(headers(sid, "Query", token, timeout_ms=5000, end=False) + frame(DATA, sid, TOTALS_15M, 1))
                while True:
                    t, fl, fsid, p = read_frame(s)
                    if t == STATUS and fsid == sid:
                        break
                lat[method].append(time.perf_counter() - t0)
                if p and p[0] == 0x08 and p[1] != 0:
                    errors += 1
                sid += 2
        except Exception:
            errors += 1
            s = None
        time.sleep(0.02)
    out.put((lat, errors))


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


# ---------------------------------------------------------------------------------------------
# Attacks. Each gets (port, token, deadline) and returns the list of its sockets' close times
# (seconds since start, None if still open) — filled by watch_closes.

class Tracker:
    def __init__(self):
        self.start = time.time()
        self.socks = []
        self.closed = {}
        self.lock = threading.Lock()

    def add(self, s):
        with self.lock:
            self.socks.append(s)

    def poll_closes(self, until):
        # Notes when the node closes each socket, without reading from it (POLLRDHUP sees the
        # FIN even while unread data waits), so "never reading" attacks stay unread.
        while time.time() < until:
            with self.lock:
                live = [s for s in self.socks if s not in self.closed]
            if live:
                p = select.poll()
                byfd = {}
                for s in live:
                    try:
                        p.register(s, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
                        byfd[s.fileno()] = s
                    except (OSError, ValueError):
                        self.closed[s] = time.time() - self.start
                for fd, ev in p.poll(100):
                    if ev & (select.POLLRDHUP | select.POLLHUP | select.POLLERR):
                        self.closed[byfd[fd]] = time.time() - self.start
            time.sleep(0.1)


def attack_big_headers(port, token, tr, until):
    # 64 connections: a HEADERS header announcing 4 MiB - 1, then that many bytes minus one.
    def one():
        try:
            s = connect(port)
            tr.add(s)
            s.sendall(struct.pack(">BBBBII", 1, HEADERS, 0, 0, 1, (4 << 20) - 1))
            chunk = b"\0" * 65536
            for _ in range(63):
                s.sendall(chunk)
        except OSError:
            pass
    ts = [threading.Thread(target=one) for _ in range(64)]
    [t.start() for t in ts]
    [t.join() for t in ts]


def attack_empty_metadata(port, token, tr, until):
    s = connect(port)
    tr.add(s)
    entry = field(3, b"")
    payload = entry * ((4 << 20) // len(entry) - 1)
    try:
        s.sendall(frame(HEADERS, 1, payload, 1))
    except OSError:
        pass


def attack_ping_flood(port, token, tr, until):
    s = connect(port)
    tr.add(s)
    ping = frame(PING, 0, b"\0" * 8)
    batch = ping * 10000
    sent = 0
    try:
        while sent < 1_500_000 and time.time() < until:
            s.sendall(batch)
            sent += 10000
    except OSError:
        pass


def attack_watch_no_read(port, token, tr, until):
    for c in range(3):
        s = connect(port)
        tr.add(s)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        for i in range(100):
            sid = 1 + 2 * i
            s.sendall(headers(sid, "Watch", token, end=False) + frame(DATA, sid, watch_request(1000), 1))
    # never read


def attack_listviews(port, token, tr, until):
    s = connect(port)
    sid = 1
    for _ in range(600):
        s.sendall(b"".join(headers(sid + 2 * i, "ListViews", token) for i in range(100)))
        got = 0
        while got < 100:
            t, _, _, _ = read_frame(s)
            if t == STATUS:
                got += 1
        sid += 200
    s.close()


def attack_big_filters(port, token, tr, until):
    empty_filter = field(2, b"")
    body = field(1, bytes.fromhex("18a0f736")) + empty_filter * ((4 << 20) // 2 - 10) + bytes.fromhex("6200")
    body = body[: (4 << 20) - 16]
    for sid in (1, 3):
        s = connect(port)
        tr.add(s)
        try:
            s.sendall(headers(sid, "Query", token, end=False) + frame(DATA, sid, body, 1))
        except OSError:
            pass


def attack_drip(port, token, tr, until):
    socks = []
    for _ in range(250):
        try:
            s = connect(port, preface=False)
            tr.add(s)
            socks.append(s)
        except OSError:
            pass
    for _ in range(500):
        try:
            s = connect(port)
            tr.add(s)
            s.sendall(frame(PING, 0, b"\0" * 8))
            socks.append(("ping", s))
        except OSError:
            pass
    k = 0
    while time.time() < until:
        for x in socks:
            try:
                if isinstance(x, tuple):
                    x[1].sendall(frame(PING, 0, b"\0" * 8))
                else:
                    x.send(PREFACE[k % 8 : k % 8 + 1])
            except OSError:
                pass
        k += 1
        time.sleep(3)


def attack_no_data(port, token, tr, until):
    # The connection stays (it did nothing wrong); each call must end at its deadline.
    s = connect(port)
    t0 = time.time()
    s.sendall(b"".join(headers(1 + 2 * i, "Query", token, timeout_ms=1000, end=False) for i in range(100)))
    codes = {}
    last = 0
    for _ in range(100):
        t, _, _, p = read_frame(s)
        if t == STATUS:
            c = p[1] if p[:1] == b"\x08" else 0
            codes[c] = codes.get(c, 0) + 1
            last = time.time() - t0
    tr.codes = f"{codes} by {last:.1f} s (4 = DEADLINE_EXCEEDED)"
    s.close()


def attack_hostile_1024(port, token, tr, until):
    for _ in range(1024):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            tr.add(s)
        except OSError:
            pass


def attack_wrong_tokens(port, token, tr, until):
    s = connect(port)
    tr.add(s)
    try:
        s.sendall(b"".join(headers(1 + 2 * i, "ListViews", "wrong") for i in range(20000)))
    except OSError:
        pass


def attack_expensive(port, token, tr, until):
    # a daily series over 27 years split by application; 400k quantiles; NUL and duplicates.
    s = connect(port)
    series = field(1, b"bytes") + varint(2 << 3) + varint(86_400_000) + field(3, b"application") + varint(4 << 3) + varint(5)
    start = 946_684_800_000
    rng = varint(1 << 3) + varint(start) + varint(2 << 3) + varint(start + 27 * 365 * 86_400_000)
    q = field(1, rng) + field(11, series)
    quant = field(1, bytes.fromhex("18a0f736")) + field(14, field(1, b"rtt") + field(2, struct.pack("<d", 0.5) * 400_000))
    codes = []
    for sid, extra in ((1, q), (3, quant)):
        s.sendall(headers(sid, "Query", token, end=False) + frame(DATA, sid, extra, 1))
        while True:
            t, _, fsid, p = read_frame(s)
            if t == STATUS and fsid == sid:
                codes.append(p[1] if p[:1] == b"\x08" else 0)
                break
    for sid, md in ((5, [("authorization", f"Bearer {token}\0junk")]), (7, [("authorization", f"Bearer {token}"), ("authorization", "Bearer x")])):
        s.sendall(headers(sid, "ListViews", metadata=md))
        while True:
            t, _, fsid, p = read_frame(s)
            if t == STATUS and fsid == sid:
                codes.append(p[1] if p[:1] == b"\x08" else 0)
                break
    tr.codes = codes


ATTACKS = [
    ("64 connections announcing 4 MiB HEADERS, no token", attack_big_headers),
    ("one 4 MiB HEADERS of empty metadata, no token", attack_empty_metadata),
    ("1.5M PINGs, never reading, no token", attack_ping_flood),
    ("100 watches × 3 clients never reading, token", attack_watch_no_read),
    ("60k ListViews calls, token", attack_listviews),
    ("2 × 4 MB QueryRequests of empty filters, token", attack_big_filters),
    ("250 dripping + 500 PING-only connections", attack_drip),
    ("100 HEADERS timeout 1 s, no DATA, token", attack_no_data),
    ("20,000 wrong tokens on one connection", attack_wrong_tokens),
    ("27-year split series, 400k quantiles, NUL, duplicate authorization", attack_expensive),
    ("1024 silent hostile connections at once", attack_hostile_1024),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    print("| attack | RSS before → peak → after (MB) | growth (MB) | offending connections closed (of, when s) | legit Status p50/p99 (ms) | legit Query p50/p99 (ms) | legit errors |")
    print("|---|---|---|---|---|---|---|")
    for i, (name, fn) in enumerate(ATTACKS):
        if a.only and str(i) not in a.only.split(","):
            continue
        time.sleep(2)
        before = rss_kb(a.pid)
        peak = [before]
        stop = multiprocessing.Event()
        q = multiprocessing.Queue()
        lp = multiprocessing.Process(target=legit, args=(a.port, a.token, stop, q))
        lp.start()
        tr = Tracker()
        tr.codes = None
        until = time.time() + a.duration
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], rss_kb(a.pid))
                time.sleep(0.05)
        sm = threading.Thread(target=sample)
        sm.start()
        at = threading.Thread(target=lambda: fn(a.port, a.token, tr, until))
        at.start()
        tr.poll_closes(until)
        at.join(timeout=max(1, until - time.time() + 30))
        stop.set()
        lat, errors = q.get()
        lp.join()
        done.set()
        sm.join()
        time.sleep(2)
        after = rss_kb(a.pid)
        n = len(tr.socks)
        closed = sorted(tr.closed.values())
        when = f"{closed[0]:.1f}–{closed[-1]:.1f}" if closed else "—"
        closes = f"{len(closed)} of {n}, {when}" if n else "— (no offending connection)"
        if tr.codes is not None:
            closes += f"; codes {tr.codes}"
        for s in tr.socks:
            try:
                s.close()
            except OSError:
                pass
        ms = lambda xs, p: f"{pct(xs, p) * 1000:.1f}"
        print(f"| {name} | {before/1024:.0f} → {max(peak[0], after)/1024:.0f} → {after/1024:.0f} | {(peak[0]-before)/1024:+.0f} | {closes} "
              f"| {ms(lat['Status'], .5)}/{ms(lat['Status'], .99)} | {ms(lat['Query'], .5)}/{ms(lat['Query'], .99)} | {errors} |", flush=True)


if __name__ == "__main__":
    main()
