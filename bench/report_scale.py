#!/usr/bin/env python3
"""Times `gatehouse report daily` end to end against a store holding N audit
events on the reported day (default 10^5 and 10^6), on SQLite and on
PostgreSQL.

The store is filled the way the bastion fills it, only faster: one node's
hash chain (`bench`, seq 1, 2, 3.. in time order, each event's SHA-256 over
the same encoding as src/store/audit.rs, the chain head row set), detail
JSON as serde_json writes it, and a `sessions` row for every session. The
events are connections (auth.success, session.start, commands, forwards,
SFTP, session.end) plus failed logins and denials, from 200 users (each
with one to three usual addresses) to 500 servers. Before the day, the
store also holds `--history` events (default: as many as the day) spread
over the 89 days before it, so that the day is a slice of a larger table
and the report's 90-day login history has something to read.
`gatehouse audit verify` checks the chain before the report runs.

PostgreSQL: a throwaway cluster (initdb and pg_ctl from
/usr/lib/postgresql/*/bin, run as the `postgres` user when we are root, on
a free 127.0.0.1 port with its socket in a temporary folder; fsync off),
stopped and removed at the end; or, with GATEHOUSE_TEST_PG_URL set, a
database created (and dropped) on that server. Filled with COPY through
psql, then VACUUM ANALYZE (what autovacuum does to a table of this size).

    cargo build --release
    python3 bench/report_scale.py [--events 100000,1000000] [--backends sqlite,postgres]
        [--history N] [--repeat 2] [--bin target/release/gatehouse] [--keep]

`--bin` defaults to $CARGO_TARGET_DIR/release/gatehouse when that is set.
Needs psql and /usr/bin/time. Prints a table and writes
bench/results/report_scale.json: per run the wall and CPU time and peak RSS
of `report daily`, sqlx's slow-statement warnings (statements over 1 s),
and the plans of the report's big queries (the day's events of the kinds
it reads, the count of the others, the 90-day login history, the sessions).
"""
import argparse, glob, hashlib, json, os, platform, pwd, random, re, shutil, socket, sqlite3, struct
import subprocess, sys, tempfile, time
from datetime import date, timedelta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE = "bench"
GENESIS = "0" * 64
DAY_US = 86_400_000_000
EVENT_COLUMNS = "ts, kind, username, server, account, session_id, source, detail, node, seq, prev_hash, hash"
SESSION_COLUMNS = ("id, username, server, account, source, node, started_at, ended_at, mode, grant_id, "
                   "recorded, bytes_up, bytes_down, exit_status, end_reason, kill_requested, flagged")
ACCOUNTS = ["root", "app", "postgres", "deploy"]
MODES = ["ssh-forwarding", "ssh-forwarding", "ssh-forwarding", "firewall", "global"]
# src/report/build.rs KINDS_READ: the kinds the report reads; it only counts the others.
KINDS_READ = ["auth.success", "auth.failure", "auth.lockout", "access.denied", "forward.denied", "command.blocked",
              "hostkey.mismatch", "session.start", "session.end", "grant.requested", "grant.approved",
              "grant.denied", "grant.revoked", "grant.expired", "policy.reloaded", "policy.rejected"]
# src/report/source.rs generate: the kinds streamed one by one (logins come as groups).
KINDS_STREAMED = [k for k in KINDS_READ if k != "auth.success"]
# src/store/audit.rs report_events_sql: less the session events of settled sessions.
SETTLED = ("AND (kind NOT IN ('session.start', 'session.end') OR session_id IS NULL OR session_id NOT IN "
           "(SELECT s.id FROM sessions s WHERE s.ended_at >= {from_} AND s.ended_at < {to} "
           "AND s.flagged IS NOT NULL))")
# src/store/sessions.rs sessions_between_sql.
SESSION_READ = ("id, username, server, account, source, node, started_at, ended_at, mode, grant_id, recorded, "
                "bytes_up, bytes_down, exit_status, end_reason, flagged")
SESSIONS_SQL = (f"SELECT {SESSION_READ} FROM sessions WHERE started_at >= $1 AND started_at < $2 "
                f"AND (ended_at IS NULL OR ended_at >= $3) UNION ALL SELECT {SESSION_READ} FROM sessions "
                f"WHERE started_at < $4 AND ended_at >= $5 AND ended_at <= $6 UNION ALL SELECT {SESSION_READ} "
                "FROM sessions WHERE started_at < $7 AND ended_at IS NULL ORDER BY started_at, id")
TS_MAX = "9999-12-31T23:59:59.999999Z"
COMMANDS = ["uptime", "df -h", "systemctl status nginx", "tail -n 100 /var/log/syslog", "ls -la /srv", "ps aux"]


# ------------------------------------------------------------- the events --

def ts_text(prefixes, us):
    """The store's timestamp form for `us` microseconds after the day's start
    (negative: days before)."""
    d, rest = divmod(us, DAY_US)
    secs, micro = divmod(rest, 1_000_000)
    return f"{prefixes[d]}T{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}.{micro:06d}Z"


def chain_hash(seq, ts, kind, user, server, account, session, source, detail, prev):
    """src/store/audit.rs chain_hash: version tag, then each field as a
    presence byte, a 64-bit big-endian length and the bytes; seq as 8 bytes."""
    h = hashlib.sha256(b"gatehouse-audit-v1\0")
    def text(v):
        if v is None:
            h.update(b"\0")
        else:
            b = v.encode()
            h.update(b"\1" + struct.pack(">Q", len(b)) + b)
    text(NODE)
    h.update(struct.pack(">q", seq))
    for v in (ts, kind, user, server, account, session, source, detail, prev):
        text(v)
    return h.hexdigest()


def detail(**kv):
    # serde_json's form: keys sorted (no preserve_order), compact.
    return json.dumps(kv, sort_keys=True, separators=(",", ":"))


def generate(n, first_us, span_us, rng, sid_prefix):
    """About `n` events (exactly n) with times in [first_us, first_us +
    span_us): (us, kind, user, server, account, session, source, detail)
    tuples, unordered, and the sessions rows as (id, user, server, account,
    source, start_us, end_us, mode, bytes_up, bytes_down)."""
    users = [f"user{i}" for i in range(200)]
    homes = {u: [f"10.{i % 4}.{(i * 7) % 250}.{(i * 13 + k) % 250}" for k in range(1 + i % 3)]
             for i, u in enumerate(users)}
    servers = [f"srv{i}" for i in range(500)]
    events, sessions = [], []
    k = 0
    while len(events) < n:
        r = rng.random()
        t0 = first_us + rng.randrange(span_us - 1_000_000)
        user = rng.choice(users)
        src = rng.choice(homes[user]) if rng.random() < 0.99 else f"192.0.2.{rng.randrange(250)}"
        if r < 0.06:
            events.append((t0, "auth.failure", user, None, None, f"{sid_prefix}f{k}", src,
                           detail(code="BAD_KEY", reason="key not accepted")))
        elif r < 0.09:
            srv = rng.choice(servers)
            events.append((t0, "access.denied", user, srv, "root", f"{sid_prefix}d{k}", src,
                           detail(code="NOT_ALLOWED", reason=f"no rule lets {user} reach {srv}", rule=None)))
        else:
            sid = f"{sid_prefix}{k}"
            srv, acct, mode = rng.choice(servers), rng.choice(ACCOUNTS), rng.choice(MODES)
            end = min(t0 + rng.randrange(10_000_000, 1_800_000_000), first_us + span_us - 1)
            events.append((t0, "auth.success", user, None, None, sid, src,
                           detail(key="SHA256:benchbenchbenchbenchbenchbenchbenchbenchben",
                                  login=f"{user}+{acct}@{srv}")))
            events.append((t0 + 1, "session.start", user, srv, acct, sid, src,
                           detail(flagged=mode == "global", grant=None, mode=mode, rule="ops")))
            inner = rng.randrange(1, 11)
            for j in range(inner):
                t = t0 + 2 + (end - t0 - 2) * (j + 1) // (inner + 1)
                x = rng.random()
                if x < 0.8:
                    d = detail(command=rng.choice(COMMANDS), kind="exec", pty=False)
                    events.append((t, "exec", user, srv, acct, sid, src, d))
                elif x < 0.9:
                    events.append((t, "forward.open", user, srv, acct, sid, src,
                                   detail(destination="127.0.0.1:5432", direction="local", flagged=False)))
                else:
                    events.append((t, "sftp.op", user, srv, acct, sid, src,
                                   detail(op="read", path="/srv/app/config.yml")))
            up, down = rng.randrange(100, 10_000), rng.randrange(1_000, 10_000_000)
            events.append((end, "session.end", user, srv, acct, sid, src,
                           detail(bytes_down=down, bytes_up=up, duration_secs=(end - t0) / 1e6,
                                  exit_status=0, reason="closed")))
            sessions.append((sid, user, srv, acct, src, t0, end, mode, up, down))
        k += 1
    # Exactly n: drop the tail of the last connection generated (its
    # session then has not ended, or never started).
    unstarted = {e[5] for e in events[n:] if e[1] == "session.start"}
    unended = {e[5] for e in events[n:] if e[1] == "session.end"}
    del events[n:]
    sessions = [s if s[0] not in unended else s[:6] + (None,) + s[7:]
                for s in sessions if s[0] not in unstarted]
    return events, sessions


def build_store_rows(n, history, day):
    """The audit rows (chained, in time order) and session rows for the day
    plus its history."""
    rng = random.Random(42)
    prefixes = {d: (day + timedelta(days=d)).isoformat() for d in range(-90, 2)}
    hist_ev, hist_sess = generate(history, -89 * DAY_US, 89 * DAY_US, rng, "h") if history else ([], [])
    day_ev, day_sess = generate(n, 0, DAY_US, rng, "s")
    events = hist_ev + day_ev
    events.sort(key=lambda e: e[0])
    rows, prev = [], GENESIS
    for seq, (us, kind, user, server, account, session, source, det) in enumerate(events, 1):
        ts = ts_text(prefixes, us)
        h = chain_hash(seq, ts, kind, user, server, account, session, source, det, prev)
        rows.append((ts, kind, user, server, account, session, source, det, NODE, seq, prev, h))
        prev = h
    sess_rows = []
    # In start order, as the bastion writes them (one row when a session
    # starts): the table's physical order then follows `started_at`, as it
    # does in a real store.
    for (sid, user, srv, acct, src, t0, end, mode, up, down) in sorted(hist_sess + day_sess,
                                                                        key=lambda r: r[5]):
        sess_rows.append((sid, user, srv, acct, src, NODE, ts_text(prefixes, t0),
                          None if end is None else ts_text(prefixes, end), mode, None, 1,
                          up, down, None if end is None else 0, None if end is None else "closed", 0,
                          int(mode == "global")))
    return rows, sess_rows, (len(rows), prev)


# ---------------------------------------------------------------- SQLite --

def seed_sqlite(path, rows, sess_rows, head):
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    with con:
        con.executemany(f"INSERT INTO audit_events ({EVENT_COLUMNS}) VALUES ({','.join('?' * 12)})", rows)
        con.executemany(f"INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ({','.join('?' * 17)})", sess_rows)
        con.execute("INSERT INTO audit_heads (node, seq, hash) VALUES (?, ?, ?)", (NODE, *head))
    con.close()


def sqlite_plans(path, day):
    """The plans and times of the report's two big queries, as the SQLite
    of Python's sqlite3 sees them (the binary bundles its own SQLite; the
    plans are the same, see src/store/audit.rs tests)."""
    start, end = f"{day.isoformat()}T00:00:00.000000Z", f"{(day + timedelta(days=1)).isoformat()}T00:00:00.000000Z"
    since = f"{(day - timedelta(days=89)).isoformat()}T00:00:00.000000Z"
    kinds = ", ".join("?" * len(KINDS_STREAMED))
    queries = {
        "day_events": (f"SELECT id, {EVENT_COLUMNS} FROM audit_events WHERE ts >= ? AND ts < ? "
                       f"AND kind IN ({kinds}) {SETTLED.format(from_='?', to='?')} ORDER BY ts, id",
                       (start, end, *KINDS_STREAMED, start, end)),
        "day_all_events": ("SELECT COUNT(*) FROM audit_events WHERE ts >= ? AND ts < ?", (start, end)),
        "login_history": ("SELECT username, source, MAX(ts) AS last FROM audit_events WHERE kind = 'auth.success' "
                          "AND ts >= ? AND ts < ? AND username IS NOT NULL GROUP BY username, source",
                          (since, start)),
        "sessions": (SESSIONS_SQL.replace("$1", "?").replace("$2", "?").replace("$3", "?").replace("$4", "?")
                     .replace("$5", "?").replace("$6", "?").replace("$7", "?"),
                     (start, end, start, start, start, TS_MAX, start)),
    }
    con = sqlite3.connect(path)
    out = {}
    for name, (sql, args) in queries.items():
        plan = [r[3] for r in con.execute("EXPLAIN QUERY PLAN " + sql, args)]
        t = time.time()
        count = sum(1 for _ in con.execute(sql, args))
        out[name] = {"plan": plan, "rows": count, "seconds": round(time.time() - t, 3)}
    con.close()
    return out


# ------------------------------------------------------------ PostgreSQL --

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """A private cluster as tests/support/pg.rs builds it, or a database on
    the server named by GATEHOUSE_TEST_PG_URL."""

    def __init__(self):
        self.external = os.environ.get("GATEHOUSE_TEST_PG_URL") or None
        self.dir = None
        self.port = None
        self.bin = None
        self.as_postgres = os.geteuid() == 0

    def _cmd(self, program):
        path = os.path.join(self.bin, program)
        return ["runuser", "-u", "postgres", "--", path] if self.as_postgres else [path]

    def start(self):
        if self.external:
            return self
        dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
        self.bin = next((d for d in dirs if os.path.exists(os.path.join(d, "initdb"))), None)
        if self.bin is None:
            sys.exit("PostgreSQL not found: apt-get install -y postgresql, or set GATEHOUSE_TEST_PG_URL")
        self.dir = tempfile.mkdtemp(prefix="ghbench-pg-")
        if self.as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        data = os.path.join(self.dir, "data")
        subprocess.run(self._cmd("initdb") + ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                                              "--locale=C", "--no-sync"],
                       check=True, capture_output=True, cwd=self.dir)
        self.port = free_port()
        opts = (f"-F -c fsync=off -c full_page_writes=off -c listen_addresses=127.0.0.1 -p {self.port} "
                f"-c unix_socket_directories={self.dir} -c max_wal_size=4GB")
        subprocess.run(self._cmd("pg_ctl") + ["-D", data, "-l", os.path.join(self.dir, "postgres.log"),
                                              "-w", "-t", "60", "-o", opts, "start"],
                       check=True, capture_output=True, cwd=self.dir)
        return self

    def stop(self):
        if self.dir:
            subprocess.run(self._cmd("pg_ctl") + ["-D", os.path.join(self.dir, "data"), "-m", "fast", "-w", "stop"],
                           capture_output=True, cwd=self.dir)
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def url(self, db):
        if self.external:
            head, _, query = self.external.partition("?")
            scheme, _, rest = head.partition("://")
            return f"{scheme}://{rest.split('/')[0]}/{db}" + (f"?{query}" if query else "")
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def admin_url(self):
        return self.external or self.url("postgres")

    def psql(self, url, sql, stdin=None):
        out = subprocess.run(["psql", url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                             input=stdin, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"psql {sql[:60]!r}: {out.stderr}")
        return out.stdout


def copy_text(rows):
    """PostgreSQL COPY text format: tab-separated, \\N for NULL."""
    def field(v):
        if v is None:
            return "\\N"
        s = str(v)
        return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return "".join("\t".join(field(v) for v in r) + "\n" for r in rows)


def seed_postgres(pg, url, rows, sess_rows, head):
    for i in range(0, len(rows), 200_000):
        pg.psql(url, f"COPY audit_events ({EVENT_COLUMNS}) FROM STDIN", copy_text(rows[i:i + 200_000]))
    pg.psql(url, f"COPY sessions ({SESSION_COLUMNS}) FROM STDIN", copy_text(sess_rows))
    pg.psql(url, f"INSERT INTO audit_heads (node, seq, hash) VALUES ('{NODE}', {head[0]}, '{head[1]}')")
    pg.psql(url, "VACUUM ANALYZE")


def pg_plans(pg, url, day):
    start, end = f"{day.isoformat()}T00:00:00.000000Z", f"{(day + timedelta(days=1)).isoformat()}T00:00:00.000000Z"
    since = f"{(day - timedelta(days=89)).isoformat()}T00:00:00.000000Z"
    kinds = ", ".join(f"'{k}'" for k in KINDS_STREAMED)
    queries = {
        "day_events": f"SELECT id, {EVENT_COLUMNS} FROM audit_events WHERE ts >= '{start}' AND ts < '{end}' "
                      f"AND kind IN ({kinds}) {SETTLED.format(from_=repr(start), to=repr(end))} ORDER BY ts, id",
        "day_all_events": f"SELECT COUNT(*) FROM audit_events WHERE ts >= '{start}' AND ts < '{end}'",
        "login_history": "SELECT username, source, MAX(ts) AS last FROM audit_events WHERE kind = 'auth.success' "
                         f"AND ts >= '{since}' AND ts < '{start}' AND username IS NOT NULL GROUP BY username, source",
    }
    sessions = SESSIONS_SQL
    for i, v in reversed(list(enumerate((start, end, start, start, start, TS_MAX, start), 1))):
        sessions = sessions.replace(f"${i}", f"'{v}'")
    queries["sessions"] = sessions
    return {name: {"plan": pg.psql(url, "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql).rstrip().split("\n")}
            for name, sql in queries.items()}


# ------------------------------------------------------------ the run --

def run(cmd, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout}{out.stderr}")
    return out


def timed(cmd):
    """Runs `cmd`: wall seconds, CPU seconds (user + system), peak RSS (KiB)
    and its standard error. Through /usr/bin/time: the rusage of a child of
    this (large) Python process would count this process's memory as the
    child's peak, which the kernel keeps across exec."""
    with tempfile.NamedTemporaryFile("r") as stats, tempfile.TemporaryFile() as err:
        t = time.time()
        p = subprocess.run(["/usr/bin/time", "-o", stats.name, "-f", "%U %S %M"] + cmd,
                           stdout=subprocess.DEVNULL, stderr=err)
        wall = time.time() - t
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        fields = stats.read().split()
    if p.returncode != 0 or len(fields) < 3:
        sys.exit(f"{' '.join(cmd)} failed:\n{stderr}")
    user, system, rss = fields[-3:]
    return wall, float(user) + float(system), int(rss), stderr


def slow_statements(stderr):
    """sqlx's warnings for statements over 1 s (the whole fetch, consumer
    included): what they read and how long they took."""
    out = []
    for line in re.sub(r"\x1b\[[0-9;]*m", "", stderr).splitlines():
        if "slow statement" in line:
            summary = re.search(r'summary="([^"]*)"', line)
            rows = re.search(r"rows_returned=(\d+)", line)
            secs = re.search(r"elapsed_secs=([0-9.]+)", line)
            out.append({"summary": summary.group(1) if summary else "?",
                        "rows": int(rows.group(1)) if rows else None,
                        "seconds": round(float(secs.group(1)), 2) if secs else None})
    return out


def one(args, backend, n, day, rows, sess_rows, head, pg):
    tmp = tempfile.mkdtemp(prefix="ghreport")
    dbname = None
    url = None
    try:
        shutil.copytree(os.path.join(ROOT, "policies"), os.path.join(tmp, "policies"))
        if backend == "sqlite":
            url = "sqlite://data/g.db"
        else:
            dbname = f"ghbench_{os.getpid()}_{n}"
            pg.psql(pg.admin_url(), f"CREATE DATABASE {dbname}")
            url = pg.url(dbname)
        cfg = os.path.join(tmp, "gatehouse.toml")
        with open(cfg, "w") as f:
            f.write(f'[server]\ndatabase = "{url}"\nnode = "{NODE}"\n')
        gh = [args.bin, "--config", cfg]
        run(gh + ["audit", "verify"])  # creates the schema
        t = time.time()
        if backend == "sqlite":
            seed_sqlite(os.path.join(tmp, "data", "g.db"), rows, sess_rows, head)
        else:
            seed_postgres(pg, url, rows, sess_rows, head)
        fill = time.time() - t
        t = time.time()
        verified = run(gh + ["audit", "verify"]).stdout.strip()
        verify_s = time.time() - t
        if f"intact: {len(rows)} events" not in verified:
            sys.exit(f"unexpected: {verified}")
        times, cpu, rss, slow = [], [], [], []
        for _ in range(args.repeat):
            out_dir = os.path.join(tmp, "reports")
            shutil.rmtree(out_dir, ignore_errors=True)
            wall, used, maxrss, stderr = timed(gh + ["report", "daily", "--date", day.isoformat(), "--out", out_dir])
            times.append(round(wall, 3))
            cpu.append(round(used, 3))
            rss.append(maxrss)
            slow.append(slow_statements(stderr))
        path = os.path.join(out_dir, f"{day.isoformat()}.json")
        with open(path) as f:
            summary = json.load(f)["summary"]
        if summary["events"] != n:
            sys.exit(f"the report counted {summary['events']} events, not {n}")
        plans = sqlite_plans(os.path.join(tmp, "data", "g.db"), day) if backend == "sqlite" else pg_plans(pg, url, day)
        outputs = {f: os.path.getsize(os.path.join(out_dir, f"{day.isoformat()}.{f}")) for f in ("html", "md", "json", "csv")}
        return {"backend": backend, "events": n, "history_events": len(rows) - n, "seconds": times,
                "best": min(times), "cpu_seconds": cpu, "max_rss_kib": rss, "slow_statements": slow,
                "output_bytes": outputs, "json_bytes": outputs["json"], "fill_seconds": round(fill, 1),
                "verify_seconds": round(verify_s, 2), "sessions": summary["sessions"],
                "auth_success": summary["auth_success"], "first_seen_sources": summary["first_seen_sources"],
                "plans": plans}
    finally:
        if dbname and args.keep:
            print(f"  kept database {url} and {tmp}")
        elif dbname:
            try:
                pg.psql(pg.admin_url(), f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
            except RuntimeError as e:
                print(e, file=sys.stderr)
        if args.keep:
            print(f"  kept {tmp} (gatehouse.toml there points at its store)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", default="100000,1000000")
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--history", type=int, default=None,
                    help="events over the 89 days before the day (default: as many as the day)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                                                  "release", "gatehouse"))
    ap.add_argument("--day", default="2026-01-15")
    ap.add_argument("--keep", action="store_true",
                    help="keep each run's folder and store, and the PostgreSQL cluster (for profiling)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "report_scale.json"))
    args = ap.parse_args()
    day = date.fromisoformat(args.day)
    backends = args.backends.split(",")
    load_before = open("/proc/loadavg").read().split()[:3]
    pg = PgCluster().start() if "postgres" in backends else None
    results = []
    try:
        for n in [int(x) for x in args.events.split(",")]:
            t = time.time()
            rows, sess_rows, head = build_store_rows(n, n if args.history is None else args.history, day)
            print(f"{n:>9} events (+{len(rows) - n} before the day): generated and chained in {time.time() - t:.1f} s",
                  flush=True)
            for backend in backends:
                r = one(args, backend, n, day, rows, sess_rows, head, pg)
                results.append(r)
                print(f"  {backend:<8} report daily {', '.join(f'{s:.2f}' for s in r['seconds'])} s "
                      f"(CPU {', '.join(f'{s:.2f}' for s in r['cpu_seconds'])} s, peak RSS "
                      f"{max(r['max_rss_kib']) // 1024} MiB; filled in {r['fill_seconds']} s, "
                      f"audit verify {r['verify_seconds']} s)", flush=True)
                for s in r["slow_statements"][-1]:
                    print(f"           {s['seconds']:.2f} s  {s['rows']} rows  {s['summary']}")
    finally:
        if pg and args.keep and pg.dir:
            print(f"PostgreSQL left running for --keep: runuser -u postgres -- {pg.bin}/pg_ctl "
                  f"-D {pg.dir}/data stop; rm -rf {pg.dir}")
        elif pg:
            pg.stop()
    print()
    print(f"| backend | events in the day | events before it | report daily, wall (best of {args.repeat}) "
          "| CPU (user+sys) | peak RSS | audit verify (whole table) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['backend']} | {r['events']:,} | {r['history_events']:,} | {r['best']:.2f} s | "
              f"{min(r['cpu_seconds']):.2f} s | {max(r['max_rss_kib']) // 1024} MiB | {r['verify_seconds']:.1f} s |")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.release()}",
                   "loadavg_before": load_before, "loadavg_after": open("/proc/loadavg").read().split()[:3],
                   "binary": args.bin, "runs": results}, f, indent=2)


if __name__ == "__main__":
    main()
