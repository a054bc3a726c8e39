#!/usr/bin/env python3
"""Times `gatehouse report daily` end to end against a SQLite store holding
N audit events on the reported day (default 10^5 and 10^6).

The events are bulk-inserted straight into the store's table (the report
reads the table; it does not check the chain), with a realistic mix of
kinds, users, servers and sources spread over the day. Usage:

    cargo build --release
    python3 bench/report_scale.py [--events 100000,1000000] [--bin target/release/gatehouse]

Prints one line per size and writes bench/results/report_scale.json.
"""
import argparse, json, os, random, shutil, sqlite3, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = [("auth.success", 20), ("auth.failure", 5), ("session.start", 15), ("session.end", 15),
         ("exec", 35), ("forward.open", 4), ("access.denied", 3), ("sftp.op", 3)]


def populate(db, n, day):
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    rng = random.Random(42)
    kinds = [k for k, w in KINDS for _ in range(w)]
    users = [f"user{i}" for i in range(200)]
    servers = [f"srv{i}" for i in range(500)]
    rows = []
    for i in range(n):
        secs = i * 86400 // n
        ts = f"{day}T{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}.{i % 1000000:06d}Z"
        kind = rng.choice(kinds)
        user = rng.choice(users)
        detail = {"reason": "bench"} if kind != "session.end" else {"bytes_up": 100, "bytes_down": 2000, "exit_status": 0}
        rows.append((ts, kind, user, rng.choice(servers), "root", f"s{i // 20}",
                     f"10.0.{rng.randrange(4)}.{rng.randrange(250)}", json.dumps(detail), "bench", i + 1, "0" * 64, "0" * 64))
        if len(rows) == 50000:
            con.executemany("INSERT INTO audit_events (ts, kind, username, server, account, session_id, source, detail, node, seq, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            rows = []
    if rows:
        con.executemany("INSERT INTO audit_events (ts, kind, username, server, account, session_id, source, detail, node, seq, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    con.commit()
    con.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", default="100000,1000000")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "gatehouse"))
    ap.add_argument("--day", default="2026-01-15")
    args = ap.parse_args()
    results = []
    for n in [int(x) for x in args.events.split(",")]:
        tmp = tempfile.mkdtemp(prefix="ghreport")
        try:
            shutil.copytree(os.path.join(ROOT, "policies"), os.path.join(tmp, "policies"))
            cfg = os.path.join(tmp, "gatehouse.toml")
            with open(cfg, "w") as f:
                f.write('[server]\ndatabase = "sqlite://data/g.db"\n')
            subprocess.run([args.bin, "--config", cfg, "audit", "verify"], check=True, capture_output=True)
            t = time.time()
            populate(os.path.join(tmp, "data", "g.db"), n, args.day)
            fill = time.time() - t
            t = time.time()
            out = subprocess.run([args.bin, "--config", cfg, "report", "daily", "--date", args.day,
                                  "--out", os.path.join(tmp, "reports")], capture_output=True, text=True)
            took = time.time() - t
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
                sys.exit(1)
            size = os.path.getsize(os.path.join(tmp, "reports", f"{args.day}.json"))
            print(f"{n:>9} events: report daily (html, md, json, csv) in {took:.2f} s; json {size // 1024} KiB (store filled in {fill:.1f} s)")
            results.append({"events": n, "seconds": round(took, 3), "json_bytes": size})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "report_scale.json"), "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "backend": "sqlite", "runs": results}, f, indent=2)


if __name__ == "__main__":
    main()
