#!/usr/bin/env python3
"""Gatehouse benchmark: N concurrent recorded PTY sessions on ONE node.

Issue 22, item 3. Everything on 127.0.0.1 in a temporary folder:

  target     bench/tools' `echo_target`: a russh server that accepts any
             key and echoes every byte of a PTY "shell" (no sshd, no bash:
             10,000 of those would cost more than the bastion)
  gatehouse  one `gatehouse serve` (release build), SQLite, one server
             entry in ssh-forwarding mode with record = "always"
  client     bench/tools' `sessions`: one process on russh's client
             holding every session (PTY + shell), a keystroke every
             --interval seconds each, the echo timed

The script samples the bastion (and the target and the client) from /proc
before the ramp, when every session is open (the hold starts), and when the
hold ends: RSS and PSS, open descriptors, threads, CPU seconds; and prints
per-session figures. The soft open-file limit is raised for everything
started (to the hard limit: a bastion needs two sockets per session); the
limits in force are in the output.

  sudo bench/sessions.py --sessions 1000 --hold 60     # about 2 minutes
  sudo bench/sessions.py --sessions 10000 --hold 120   # about 6 minutes
  sudo bench/sessions.py --sessions 10000 --per-connection 5 --hold 120
                         # 2,000 connections with 5 sessions each (ControlMaster)

Options: --per-connection K (session channels per SSH connection, default
1), --rate (sessions per second, default 100), --inflight (default 64),
--interval (default 10 s), --key-timeout (10 s), --gatehouse BIN /
--no-build, --keep, --out (default bench/results/sessions-N.json).
Builds bench/tools with `cargo build --release` into the main target
folder (CARGO_TARGET_DIR honoured). See bench/README.md.
"""

import argparse
import datetime
import importlib.machinery
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def load_bench_run():
    loader = importlib.machinery.SourceFileLoader("bench_run", os.path.join(HERE, "run"))
    spec = importlib.util.spec_from_loader("bench_run", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


br = load_bench_run()


def target_dir():
    t = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    return t if os.path.isabs(t) else os.path.join(REPO, t)


def build(args):
    tdir = target_dir()
    if not args.no_build:
        env = dict(os.environ, CARGO_TARGET_DIR=tdir)
        br.log("cargo build --release (gatehouse, bench/tools)")
        subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True, env=env)
        subprocess.run(["cargo", "build", "--release", "--manifest-path",
                        os.path.join(HERE, "tools", "Cargo.toml"),
                        "--bin", "sessions", "--bin", "echo_target"], check=True, env=env)
    gh = os.path.abspath(args.gatehouse) if args.gatehouse else os.path.join(tdir, "release", "gatehouse")
    tools = {n: os.path.join(tdir, "release", n) for n in ("sessions", "echo_target")}
    for path in [gh, *tools.values()]:
        if not os.access(path, os.X_OK):
            raise br.BenchError(f"{path} not found: build first")
    return gh, tools


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def sample(pid):
    st = br.proc_stat(pid)
    mem = br.mem_rollup(pid)
    return {
        "cpu_s": st[1] / os.sysconf("SC_CLK_TCK") if st else None,
        "rss_kib": mem[0] if mem else None,
        "pss_kib": mem[1] if mem else None,
        "fds": fds(pid),
        "threads": int(br.status_field(pid, "Threads") or 0) if st else None,
    }


def snapshot(procs):
    return {name: sample(p.pid) for name, p in procs.items()}


def per_session(a, b, key, n):
    if not n or a.get(key) is None or b.get(key) is None:
        return None
    return round((b[key] - a[key]) / n, 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--per-connection", type=int, default=1,
                    help="session channels per SSH connection (as a ControlMaster multiplexes)")
    ap.add_argument("--hold", type=float, default=120)
    ap.add_argument("--interval", type=float, default=10)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--inflight", type=int, default=64)
    ap.add_argument("--key-timeout", type=float, default=10)
    ap.add_argument("--record", choices=["always", "never"], default="always")
    ap.add_argument("--gatehouse")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()
    if os.geteuid() != 0:
        ap.error("run as root (like bench/run)")
    out_path = args.out or os.path.join(HERE, "results", f"sessions-{args.sessions}.json")
    gh_bin, tools = build(args)
    nofile = raise_nofile()
    tmp = tempfile.mkdtemp(prefix="gh-sessions-")
    p = lambda *parts: os.path.join(tmp, *parts)
    procs = br.Procs()
    res = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": br.machine_info(),
        "config": vars(args) | {"nofile_soft_hard": list(nofile)},
    }
    ok = False
    try:
        for d in ("keys", "gh", "gh/data", "gh/policies", "gh/recordings", "logs"):
            os.makedirs(p(d), exist_ok=True)
        client_pub = br.keygen(p("keys/client"), "bench-client")
        br.keygen(p("gh/data/identity_ed25519_key"), "gatehouse-identity")
        br.keygen(p("gh/data/ssh_host_ed25519_key"), "gatehouse-host")
        br.keygen(p("keys/target_host"), "target-host")
        target_fp = br.fingerprint(p("keys/target_host.pub"))
        target_port, gh_port = br.free_ports(2)
        target = procs.start_daemon("target", [tools["echo_target"], "--listen", f"127.0.0.1:{target_port}",
                                               "--host-key", p("keys/target_host")], p("logs/target.log"))
        br.wait_banner(target_port, target, "echo_target")
        with open(p("gh/policies/bench.toml"), "w") as f:
            f.write(f'''[[user]]
name = "alice"
keys = ["{client_pub}"]
groups = ["bench"]

[[server]]
name = "t-echo"
address = "127.0.0.1:{target_port}"
host_key = "{target_fp}"
mode = "ssh-forwarding"
accounts = ["root"]
allow = ["group:bench"]
ports = [{target_port}]
record = "{args.record}"
''')
        with open(p("gh/gatehouse.toml"), "w") as f:
            f.write(f'''[server]
listen = "127.0.0.1:{gh_port}"
recordings = "{p("gh/recordings")}"

[limits]
# Loopback is one source: the per-source login rate must not be the limit.
auth_per_minute_per_source = 10000000
max_startups = {max(100, 2 * args.inflight)}
login_grace_time = "120s"
idle_timeout = "2h"
''')
        gh = procs.start_daemon("gatehouse", [gh_bin, "--config", p("gh/gatehouse.toml"), "serve"],
                                p("logs/gatehouse.log"))
        br.wait_banner(gh_port, gh, "gatehouse")
        time.sleep(2)
        watched = {"gatehouse": gh, "target": target}
        snaps = {"before": snapshot(watched)}
        br.log(f"{args.sessions} sessions at {args.rate}/s, hold {args.hold}s, nofile {nofile}")
        client = subprocess.Popen(
            [tools["sessions"], "--addr", f"127.0.0.1:{gh_port}", "--user", "alice+root@t-echo",
             "--key", p("keys/client"), "--sessions", str(args.sessions), "--rate", str(args.rate),
             "--per-connection", str(args.per_connection),
             "--inflight", str(args.inflight), "--interval", str(args.interval),
             "--hold", str(args.hold), "--key-timeout", str(args.key_timeout)],
            stdout=subprocess.PIPE, stderr=open(p("logs/client.log"), "wb"), text=True,
            start_new_session=True)
        procs.clients.append(client)
        watched["client"] = client
        phases = {}
        for line in client.stdout:
            line = line.strip()
            if not line.startswith("{"):
                continue
            ev = json.loads(line)
            ph = ev.get("phase")
            if ph == "ramp":
                br.log(f"ramp: {ev['started']} started, {ev['opened']} open, {ev['failed']} failed, {ev['t']}s")
                continue
            phases[ph] = ev
            if ph in ("opened", "held"):
                snaps[ph] = snapshot(watched)
                br.log(f"{ph}: {ev['opened']} open, failures {ev['failures']}, gatehouse {snaps[ph]['gatehouse']}")
        client.wait(timeout=120)
        res["phases"] = phases
        res["samples"] = snaps
        n = phases.get("opened", {}).get("opened", 0)
        b, o, h = snaps["before"]["gatehouse"], snaps.get("opened", {}).get("gatehouse", {}), \
            snaps.get("held", {}).get("gatehouse", {})
        hold_cpu = (h.get("cpu_s") or 0) - (o.get("cpu_s") or 0)
        ramp_cpu = (o.get("cpu_s") or 0) - (b.get("cpu_s") or 0)
        held = phases.get("held", {})
        opened = phases.get("opened", {})
        hold_failures = {k: v - opened.get("failures", {}).get(k, 0)
                         for k, v in held.get("failures", {}).items()
                         if v - opened.get("failures", {}).get(k, 0)}
        res["summary"] = {
            "sessions_wanted": args.sessions,
            "sessions_per_connection": args.per_connection,
            "sessions_open": n,
            "ramp_failures": opened.get("failures"),
            "hold_failures": hold_failures,
            "ramp_s": opened.get("ramp_s"),
            "echo_ms": held.get("echo_ms"),
            "gatehouse_rss_kib_per_session": per_session(b, o, "rss_kib", n),
            "gatehouse_pss_kib_per_session": per_session(b, o, "pss_kib", n),
            "gatehouse_fds_per_session": per_session(b, o, "fds", n),
            "gatehouse_fds_open": o.get("fds"),
            "gatehouse_threads": o.get("threads"),
            "gatehouse_cpu_s_per_login": round(ramp_cpu / n, 4) if n else None,
            "gatehouse_cpu_share_in_hold": round(hold_cpu / args.hold, 3) if args.hold else None,
            "target_cpu_share_in_hold": round(((snaps.get("held", {}).get("target", {}).get("cpu_s") or 0)
                                               - (snaps.get("opened", {}).get("target", {}).get("cpu_s") or 0))
                                              / args.hold, 3),
            "loadavg_end": br.loadavg(),
        }
        ok = True
    except (br.BenchError, subprocess.CalledProcessError, OSError, ValueError) as e:
        res["error"] = str(e)
        print(f"error: {e}", file=sys.stderr)
    finally:
        procs.stop_all()
        try:
            with open(p("logs/gatehouse.log"), errors="replace") as f:
                res["gatehouse_log_warnings"] = [l.strip() for l in f if " WARN " in l or " ERROR " in l][:30]
        except OSError:
            pass
        if args.keep or not ok:
            print(f"kept {tmp}", file=sys.stderr)
            shutil.rmtree(p("gh/recordings"), ignore_errors=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res.get("summary", {}), indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
