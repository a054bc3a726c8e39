#!/usr/bin/env python3
"""Review console timings: the Today page and the sessions list over a store
of 10^6 audit events and about 10^5 sessions, and a 1-hour recording's cast,
served by a real `gatehouse serve` with `[web] listen` on 127.0.0.1.

The store (SQLite) is created by the binary itself (`gatehouse web link`
applies the migrations). With `--events N` (default 10^6) it is filled the
way bench/report_scale.py fills it (one node's hash chain, 200 users, 500
servers, a `sessions` row per connection): `--today-share` of the events
(default 0.1) on today so far, the rest over the 89 days before; about one
session per nine events, so 10^6 events give about 10^5 sessions; a few
more sessions are live. `--recordings R` (default 10 000) of the sessions
get a small recording with its sidecar under recordings/, a tenth of them
reviewed, and their `review` column (migration 0022) set as the bastion
sets it (the Today page reads that index, not the folder; `serve`'s
reconciliation at start then finds nothing to change). With
`--events 0`, `--sessions N` bare `sessions` rows as before. One cast of an
hour of shell output (an event every 0.5 s, 7200 events, a 120x40 screen
redrawn with text) is written under recordings/ as well.

Measured over HTTPS with the session cookie of a real sign-in link, each
request repeated `--repeat` times (median, p95, max):
  - the Today page, first load and then (the recordings waiting for review
    from the index: one COUNT and one LIMIT);
  - the sessions list by duration: first page, one user, one server, a
    prefix, and page 21 through the duration cursor;
  - the first page of the sessions list, unfiltered and for one user;
  - a deep page, reached by following the "older" cursor 20 times
    (keyset pagination: it should cost what the first page costs);
  - a filtered page (server, recorded, date range);
  - the cast of the 1-hour recording: time to the first byte and to the
    last (the player parses the whole cast before drawing its first frame,
    so the last byte bounds the time to first frame from the server side).

    cargo build --release
    python3 bench/web_console.py [--events 1000000] [--today-share 0.1] [--recordings 10000]
        [--sessions 100000] [--repeat 20] [--bin PATH] [--out PATH] [--keep]

Writes bench/results/web_console.json (or --out) and prints a table. Standard library
only; needs nothing but the binary. Stops the server it started, also on
error.
"""
import argparse, http.cookiejar, json, os, random, re, shutil, socket, sqlite3, ssl, statistics
import subprocess, sys, tempfile, time, urllib.request
from datetime import datetime, timedelta, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import report_scale  # noqa: E402  (the store filler: chain, events, sessions)


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


def has_column(db, table, column):
    con = sqlite3.connect(db)
    cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
    con.close()
    return column in cols


def fill_events(db, n, share, now):
    """`n` events, `share` of them today before `now`, the rest over the 89
    days before; their sessions; five live sessions started in the last
    hour. Returns (events, sessions)."""
    day = now.date()
    today_n = int(n * share)
    # report_scale spreads the day's events over the whole UTC day, later
    # hours too: the Today page reads the day's range whatever the hour,
    # so they cost it what they would had they happened already.
    rows, sess_rows, head = report_scale.build_store_rows(today_n, n - today_n, day)
    report_scale.seed_sqlite(db, rows, sess_rows, head)
    con = sqlite3.connect(db)
    with con:
        live = []
        for i in range(5):
            start = now - timedelta(minutes=10 * (i + 1))
            live.append((f"live{i}", f"user{i}", f"srv{i}", "root", "10.9.9.9", "bench", ts(start), None,
                         "ssh-forwarding", None, 1, 0, 0, None, None, 0, 0))
        con.executemany(f"INSERT INTO sessions ({report_scale.SESSION_COLUMNS}) VALUES ({','.join('?' * 17)})",
                        live)
        if has_column(db, "sessions", "duration_ms"):
            # What `session_end` writes (migration 0017).
            con.execute("UPDATE sessions SET duration_ms = CAST(ROUND((julianday(ended_at) - "
                        "julianday(started_at)) * 86400000.0) AS INTEGER) WHERE ended_at IS NOT NULL")
    con.execute("ANALYZE")
    con.close()
    return len(rows), len(sess_rows) + 5


def write_recordings(root, db, n, now):
    """A small recording (cast, sidecar; a tenth with a review file), as the
    recorder leaves it, for each of `n` ended sessions to a server, the
    latest; the sessions marked recorded, with the review state the bastion
    keeps in `sessions.review` (migration 0022) when the column exists."""
    con = sqlite3.connect(db)
    picked = con.execute(
        "SELECT id, username, server, account, started_at FROM sessions "
        "WHERE server IS NOT NULL AND ended_at IS NOT NULL ORDER BY started_at DESC LIMIT ?", (n,)).fetchall()
    marks = []
    for i, (rid, user, server, account, started) in enumerate(picked):
        start = datetime.strptime(started[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
        d = start.strftime("%Y-%m-%d")
        os.makedirs(f"{root}/{d}", exist_ok=True)
        with open(f"{root}/{d}/{rid}.cast", "w") as f:
            f.write(json.dumps({"version": 2, "width": 80, "height": 24, "timestamp": 0}) + "\n")
            f.write(json.dumps([0.5, "o", "uptime\r\n"]) + "\n")
        side = {"format": 2, "id": rid, "session": rid, "user": user,
                "server": server, "account": account or "root", "source": "10.0.0.1:50000",
                "kind": "exec", "command": "uptime", "width": 80, "height": 24,
                "started_at": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "ended_at": (start + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ"), "complete": True,
                "exit_status": 0, "bytes": {"stdin": 0, "stdout": 8, "stderr": 0}}
        with open(f"{root}/{d}/{rid}.json", "w") as f:
            json.dump(side, f)
        reviewed = i % 10 == 0
        if reviewed:
            with open(f"{root}/{d}/{rid}.review.json", "w") as f:
                json.dump({"id": rid, "reviews": [{"by": "user1", "at": ts(now), "flagged": False, "note": ""}]}, f)
        marks.append(("reviewed" if reviewed else "unreviewed", rid))
    with con:
        con.executemany("UPDATE sessions SET recorded = 1 WHERE id = ?", [(m[1],) for m in marks])
        if has_column(db, "sessions", "review"):
            con.executemany("UPDATE sessions SET review = ? WHERE id = ?", marks)
    con.execute("ANALYZE")
    con.close()
    return len(marks)


def write_cast(path):
    with open(path, "w") as f:
        f.write(json.dumps({"version": 2, "width": 120, "height": 40, "timestamp": 0}) + "\n")
        for i in range(7200):
            line = f"\x1b[{i % 40 + 1};1H{i:06d} " + ("x" * 100) + "\r\n"
            f.write(json.dumps([round(i * 0.5, 6), "o", line]) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--today-share", type=float, default=0.1)
    ap.add_argument("--recordings", type=int, default=10_000)
    ap.add_argument("--sessions", type=int, default=100_000, help="with --events 0: bare sessions rows")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "web_console.json"))
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
            f.write(f'[server]\nlisten = "127.0.0.1:{ssh}"\nnode = "web"\n'
                    f'[web]\nlisten = "127.0.0.1:{web}"\n')
        cfg = ["--config", f"{home}/gatehouse.toml"]
        subprocess.run([a.bin, *cfg, "web", "link", "user1"], check=True, capture_output=True)
        now = datetime.now(timezone.utc)
        t0 = time.time()
        db = f"{home}/data/gatehouse.db"
        if a.events:
            n_events, n_sessions = fill_events(db, a.events, a.today_share, now)
        else:
            fill(db, a.sessions, now)
            n_events, n_sessions = 0, a.sessions
        n_recordings = write_recordings(f"{home}/recordings", db, a.recordings, now)
        print(f"filled {n_events} events, {n_sessions} sessions, {n_recordings} recordings "
              f"in {time.time() - t0:.1f} s")
        day = now.strftime("%Y-%m-%d")
        os.makedirs(f"{home}/recordings/{day}", exist_ok=True)
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
        # The link's page has one button that POSTs the link back.
        opener.open(link).read()
        opener.open(urllib.request.Request(link, data=b"", method="POST",
                                           headers={"Origin": base})).read()

        def get(path):
            t = time.perf_counter()
            r = opener.open(base + path)
            first = r.read(1)
            t1 = time.perf_counter()
            body = first + r.read()
            return t1 - t, time.perf_counter() - t, body.decode("utf-8", "replace")

        def p95(xs):
            xs = sorted(xs)
            return xs[max(0, -(-len(xs) * 95 // 100) - 1)]

        def timed(name, path_fn, repeat=None):
            runs = [get(path_fn()) for _ in range(repeat or a.repeat)]
            total = [r[1] for r in runs]
            return {"name": name, "median_ms": round(statistics.median(total) * 1000, 1),
                    "p95_ms": round(p95(total) * 1000, 1), "max_ms": round(max(total) * 1000, 1),
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

        def deep_duration():
            path = "/sessions?sort=duration"
            for _ in range(20):
                body = get(path)[2]
                m = re.search(r'href="(/sessions\?[^"]*after_id=[^"]*)"', body)
                if not m:
                    return None
                path = m.group(1).replace("&amp;", "&")
            return path

        # The Today page (the recordings waiting for review from the
        # index, no folder read). Its figures, as shown.
        today_first = timed("Today, first load", lambda: "/today", repeat=1)
        body = get("/today")[2]
        today_counts = dict(re.findall(r'id="count-([a-z]+)"[^>]*><span class="n">(\d+)', body))
        today = timed("Today", lambda: "/today")
        deep_dur = deep_duration()
        since = (now - timedelta(days=7)).strftime("%Y-%m-%d")
        results = [
            today_first,
            today,
            timed("sessions by duration, first page", lambda: "/sessions?sort=duration"),
            timed("sessions by duration, one user", lambda: "/sessions?sort=duration&user=user1"),
            timed("sessions by duration, one server", lambda: "/sessions?sort=duration&server=srv3"),
            timed("sessions by duration, user prefix user7", lambda: "/sessions?sort=duration&user=user7"),
        ] + ([timed("sessions by duration, page 21 (cursor)", lambda: deep_dur)] if deep_dur else []) + [
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
        print(f"{'request':42} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'1st byte':>9} {'bytes':>9}")
        for r in results:
            print(f"{r['name']:42} {r['median_ms']:>10} {r['p95_ms']:>8} {r['max_ms']:>8} "
                  f"{str(r['first_byte_ms']):>9} {str(r['bytes']):>9}")
        print("Today's figures:", today_counts)
        for f in frames:
            print(f"browser, 1-hour recording: page to player {f['page_to_player_ms']} ms, "
                  f"play to first frame {f['play_to_first_frame_ms']} ms")
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump({"events": n_events, "today_share": a.today_share, "sessions": n_sessions,
                       "recordings": a.recordings, "repeat": a.repeat, "bin": a.bin,
                       "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "loadavg": os.getloadavg(), "today": today_counts,
                       "results": results, "browser": frames}, f, indent=2)
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
