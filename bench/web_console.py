#!/usr/bin/env python3
"""Review console timings: the sessions list over N sessions (default 10^5)
and a 1-hour recording's cast, served by a real `gatehouse serve` with
`[web] listen` on 127.0.0.1.

The store (SQLite) is created by the binary itself (`gatehouse web link`
applies the migrations), then filled with N `sessions` rows from 200 users
to 500 servers over 90 days, a tenth of them recorded, a few live. One cast
of an hour of shell output (an event every 0.5 s, 7200 events, a 120x40
screen redrawn with text) is written under recordings/.

Measured over HTTPS with the session cookie of a real sign-in link, each
request repeated `--repeat` times (median, max):
  - the first page of the sessions list, unfiltered and for one user;
  - a deep page, reached by following the "older" cursor 20 times
    (keyset pagination: it should cost what the first page costs);
  - a filtered page (server, recorded, date range);
  - the cast of the 1-hour recording: time to the first byte and to the
    last (the player parses the whole cast before drawing its first frame,
    so the last byte bounds the time to first frame from the server side).

    cargo build --release
    python3 bench/web_console.py [--sessions 100000] [--repeat 5] [--bin PATH] [--keep]

Writes bench/results/web_console.json and prints a table. Standard library
only; needs nothing but the binary. Stops the server it started, also on
error.
"""
import argparse, http.cookiejar, json, os, random, re, shutil, socket, sqlite3, ssl, statistics
import subprocess, sys, tempfile, time, urllib.request
from datetime import datetime, timedelta, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ts(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def fill(db, n, now):
    rnd = random.Random(7)
    rows = []
    for i in range(n):
        start = now - timedelta(seconds=rnd.randrange(90 * 86400))
        live = i < 5
        end = None if live else start + timedelta(seconds=rnd.randrange(10, 7200))
        rows.append((
            f"s{i:08d}", f"user{rnd.randrange(200)}", f"srv{rnd.randrange(500)}",
            rnd.choice(["root", "app", "postgres"]), f"198.51.100.{rnd.randrange(250)}", "bench",
            ts(start), ts(end) if end else None, "ssh-forwarding", None, int(rnd.random() < 0.1),
            0, 0, 0, None, 0,
        ))
    con = sqlite3.connect(db)
    con.executemany(
        "INSERT INTO sessions (id, username, server, account, source, node, started_at, ended_at, mode, "
        "grant_id, recorded, bytes_up, bytes_down, exit_status, end_reason, kill_requested) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    con.commit()
    con.execute("ANALYZE")
    con.close()


def write_cast(path):
    with open(path, "w") as f:
        f.write(json.dumps({"version": 2, "width": 120, "height": 40, "timestamp": 0}) + "\n")
        for i in range(7200):
            line = f"\x1b[{i % 40 + 1};1H{i:06d} " + ("x" * 100) + "\r\n"
            f.write(json.dumps([round(i * 0.5, 6), "o", line]) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap.add_argument("--bin", default=os.path.join(target, "release", "gatehouse"))
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    home = tempfile.mkdtemp(prefix="ghweb")
    server = None
    try:
        for d in ["data", "policies", "recordings", "reports"]:
            os.makedirs(os.path.join(home, d))
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{home}/k"], check=True)
        key = open(f"{home}/k.pub").read().strip()
        with open(f"{home}/policies/p.toml", "w") as f:
            f.write(f'[[user]]\nname = "user1"\nkeys = ["{key}"]\nroles = ["auditor"]\n')
        web, ssh = free_port(), free_port()
        with open(f"{home}/gatehouse.toml", "w") as f:
            f.write(f'[server]\nlisten = "127.0.0.1:{ssh}"\nnode = "bench"\n'
                    f'[web]\nlisten = "127.0.0.1:{web}"\n')
        cfg = ["--config", f"{home}/gatehouse.toml"]
        subprocess.run([a.bin, *cfg, "web", "link", "user1"], check=True, capture_output=True)
        now = datetime.now(timezone.utc)
        t0 = time.time()
        fill(f"{home}/data/gatehouse.db", a.sessions, now)
        print(f"filled {a.sessions} sessions in {time.time() - t0:.1f} s")
        day = now.strftime("%Y-%m-%d")
        os.makedirs(f"{home}/recordings/{day}")
        write_cast(f"{home}/recordings/{day}/onehour.cast")
        server = subprocess.Popen([a.bin, *cfg, "serve"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True)
        for line in server.stdout:
            if "review console on" in line:
                break
        link = json.loads(subprocess.run([a.bin, *cfg, "web", "link", "user1", "--json"], check=True,
                                         capture_output=True, text=True).stdout)["url"]
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                             urllib.request.HTTPCookieProcessor(jar))
        base = f"https://127.0.0.1:{web}"
        opener.open(link).read()

        def get(path):
            t = time.perf_counter()
            r = opener.open(base + path)
            first = r.read(1)
            t1 = time.perf_counter()
            body = first + r.read()
            return t1 - t, time.perf_counter() - t, body.decode("utf-8", "replace")

        def timed(name, path_fn):
            runs = [get(path_fn()) for _ in range(a.repeat)]
            total = [r[1] for r in runs]
            return {"name": name, "median_ms": round(statistics.median(total) * 1000, 1),
                    "max_ms": round(max(total) * 1000, 1),
                    "first_byte_ms": round(statistics.median([r[0] for r in runs]) * 1000, 1),
                    "bytes": len(runs[0][2])}

        def deep():
            path = "/sessions"
            for _ in range(20):
                body = get(path)[2]
                m = re.search(r'href="(/sessions\?[^"]*before_id=[^"]*)"', body)
                path = m.group(1).replace("&amp;", "&")
            return path

        deep_path = deep()
        since = (now - timedelta(days=7)).strftime("%Y-%m-%d")
        results = [
            timed("sessions, first page", lambda: "/sessions"),
            timed("sessions, one user", lambda: "/sessions?user=user7"),
            timed("sessions, page 21 (cursor)", lambda: deep_path),
            timed("sessions, server+recorded+7 days", lambda: f"/sessions?server=srv3&recorded=yes&from={since}&to={day}"),
            timed("sessions, live", lambda: "/sessions?live=yes"),
            timed("1-hour cast (7200 events)", lambda: "/recordings/onehour/cast"),
            timed("player page of the 1-hour recording", lambda: "/recordings/onehour"),
        ]
        # In a browser: page load to player, and play() to the first event's
        # text on the player's screen (the player fetches and parses the
        # whole cast first). Needs tests/web/node_modules (scripts/setup).
        frames = []
        if os.path.isdir(os.path.join(ROOT, "tests", "web", "node_modules", "playwright-core")):
            for _ in range(min(a.repeat, 3)):
                link = json.loads(subprocess.run([a.bin, *cfg, "web", "link", "user1", "--json"], check=True,
                                                 capture_output=True, text=True).stdout)["url"]
                out = subprocess.run(["node", os.path.join(ROOT, "bench", "web_first_frame.mjs"), base, link,
                                      "onehour", "000000"], capture_output=True, text=True, timeout=120)
                if out.returncode == 0:
                    frames.append(json.loads(out.stdout.strip().splitlines()[-1]))
                else:
                    print("first-frame run failed:", out.stderr[-500:])
        print(f"{'request':40} {'median ms':>10} {'max ms':>8} {'1st byte':>9} {'bytes':>9}")
        for r in results:
            print(f"{r['name']:40} {r['median_ms']:>10} {r['max_ms']:>8} {r['first_byte_ms']:>9} {r['bytes']:>9}")
        for f in frames:
            print(f"browser, 1-hour recording: page to player {f['page_to_player_ms']} ms, "
                  f"play to first frame {f['play_to_first_frame_ms']} ms")
        os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
        with open(os.path.join(ROOT, "bench", "results", "web_console.json"), "w") as f:
            json.dump({"sessions": a.sessions, "repeat": a.repeat, "results": results, "browser": frames}, f,
                      indent=2)
    finally:
        if server:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
        if a.keep:
            print("kept", home)
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
