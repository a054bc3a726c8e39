#!/usr/bin/env python3
"""Gatehouse benchmark: many concurrent interactive PTY sessions, two nodes.

Issue 10, item 8: N concurrent interactive sessions (default 1,000; PTY
shells idling with one keystroke every few seconds) across two Gatehouse
nodes sharing one PostgreSQL, held for --hold seconds (default 60): every
refusal or failure counted, keystroke echo latency (median, p99, max), and
memory per session, against an OpenSSH terminating jump doing the same work
in the same run.

Everything runs on 127.0.0.1 in a temporary folder:

  target      one OpenSSH sshd (root logins, PTYs, MaxStartups and
              MaxSessions raised; only curve25519-sha256 and one cipher)
  postgres    a private PostgreSQL cluster (initdb, run as `postgres`)
  gatehouse   two `gatehouse serve` nodes (release build, one private copy
              of the binary), distinct `node` names and ports, one database,
              shared host key, identity, signing key, master key,
              policies, recordings and reports folders
  jump        an OpenSSH sshd whose login runs `ssh -tt target` (the
              terminating jump: two PTYs, two SSH legs, like bench/run's)

One load client drives both paths: a single asyncio process on asyncssh
(installed by this script with pip into a venv under the temporary folder,
or --venv to reuse one). It opens the sessions at a bounded rate (--rate
per second, at most --inflight logins at once), half to each Gatehouse node
(round robin), each a PTY shell (Gatehouse) or `ssh -tt target` on a PTY
(jump), waits for the shell to run a first line, then holds them all for
--hold seconds: each session types one letter every --interval seconds
(a random phase per session), and the time from writing it to reading its
echo is one sample. Phases are sequential: Gatehouse, then the jump (or
--order), each with the machine otherwise idle.

Memory per session: PSS (from /proc/PID/smaps_rollup) of the two Gatehouse
processes together, loaded (mid-hold) minus before, over the sessions; for
the jump, the same over the jump sshd's whole process tree (per session one
`sshd: root@pts/N` and one `ssh` client). The target's own cost is the same
for both and is shown apart.

Prints a table, writes JSON (bench/results/pty_sessions.json or --out),
and stops everything it started, also on error and SIGTERM. The load client
itself is this file run with --client SPEC (inside the venv).
See bench/README.md.
"""

import argparse
import asyncio
import datetime
import importlib.machinery
import importlib.util
import json
import math
import os
import random
import re
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LETTERS = b"abcdefghijklmnopqrstuvwxyz"
PATHS = ["gh-rec", "gh-norec", "jump"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
TARGET_SHELL = "/bin/bash --noprofile --norc -i"
# Audit kinds that mean a login, connection or channel was turned away.
REFUSAL_KINDS = {"auth.failure", "auth.lockout", "access.denied", "connection.refused",
                 "channel.refused", "protocol.violation", "hostkey.mismatch"}
PATH_LABEL = {
    "gh-rec": "Gatehouse, 2 nodes, recording on",
    "gh-norec": "Gatehouse, 2 nodes, recording off",
    "gatehouse": "Gatehouse, 2 nodes",  # older JSON (one Gatehouse phase)
    "jump": "OpenSSH terminating jump",
}


# ================================================================ load client
#
# Runs in the venv (asyncssh). Reads a JSON spec, writes one JSON object per
# line on stdout: {"event": "ramp_done", ...}, {"event": "hold_start"},
# {"event": "hold_end"}, {"event": "result", ...}. Everything else goes to
# stderr.


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def percentile(sorted_values, q):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    k = max(0, math.ceil(q * len(sorted_values)) - 1)
    return sorted_values[min(k, len(sorted_values) - 1)]


def summarize_ms(values):
    s = sorted(values)
    if not s:
        return {"n": 0}
    return {
        "n": len(s),
        "min_ms": round(s[0], 3),
        "median_ms": round(statistics.median(s), 3),
        "mean_ms": round(statistics.fmean(s), 3),
        "p90_ms": round(percentile(s, 0.90), 3),
        "p99_ms": round(percentile(s, 0.99), 3),
        "p999_ms": round(percentile(s, 0.999), 3),
        "max_ms": round(s[-1], 3),
    }


def histogram_ms(values):
    """Counts per power-of-two bucket in ms: '<0.5', '0.5-1', '1-2', ..."""
    edges = [0.5 * (2 ** i) for i in range(16)]
    out = {}
    for v in values:
        label = None
        lo = 0.0
        for e in edges:
            if v < e:
                label = f"{lo:g}-{e:g}"
                break
            lo = e
        label = label or f">={edges[-1]:g}"
        out[label] = out.get(label, 0) + 1
    return out


def client_main(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    try:
        asyncio.run(client_run(spec))
    except KeyboardInterrupt:
        return 1
    return 0


async def client_run(spec):
    import asyncssh

    loop = asyncio.get_running_loop()
    rng = random.Random(spec.get("seed", 1))
    key = asyncssh.read_private_key(spec["key"])
    known = "\n".join(spec["known_hosts"]) + "\n"
    n = spec["sessions"]
    failures = {}
    examples = []
    open_ms = []
    sessions = []

    def fail(kind, detail):
        failures[kind] = failures.get(kind, 0) + 1
        if len(examples) < 20:
            examples.append(f"{kind}: {detail}"[:300])

    class Sess(asyncssh.SSHClientSession):
        def __init__(self):
            self.buf = bytearray()
            self.changed = asyncio.Event()
            self.want = None
            self.fut = None
            self.lost = None

        def data_received(self, data, datatype):
            now = time.perf_counter()
            if self.want is not None and self.want in data:
                if self.fut is not None and not self.fut.done():
                    self.fut.set_result(now)
                self.want = None
                return
            if self.want is None:
                self.buf += data
                if len(self.buf) > 8192:
                    del self.buf[:-4096]
                self.changed.set()

        def connection_lost(self, exc):
            self.lost = repr(exc) if exc else "channel closed"
            if self.fut is not None and not self.fut.done():
                self.fut.set_exception(ConnectionError(self.lost))
            self.changed.set()

    class Open:
        def __init__(self, index, conn, chan, sess, target):
            self.index = index
            self.conn = conn
            self.chan = chan
            self.sess = sess
            self.target = target

    async def wait_for_text(sess, needle, timeout):
        end = loop.time() + timeout
        while needle not in sess.buf:
            if sess.lost:
                raise ConnectionError(f"lost before {needle!r}: {sess.lost}; output {bytes(sess.buf[-200:])!r}")
            left = end - loop.time()
            if left <= 0:
                raise asyncio.TimeoutError(f"no {needle!r} within {timeout} s; output {bytes(sess.buf[-200:])!r}")
            sess.changed.clear()
            try:
                await asyncio.wait_for(sess.changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def open_one(index):
        tgt = spec["targets"][index % len(spec["targets"])]
        t0 = time.perf_counter()
        conn = None
        kept = False
        try:
            conn = await asyncio.wait_for(asyncssh.connect(
                "127.0.0.1", tgt["port"], username=tgt["username"], client_keys=[key],
                known_hosts=known.encode(), config=[], agent_path=None,
                kex_algs=[spec["kex"]], encryption_algs=[spec["cipher"]],
                server_host_key_algs=["ssh-ed25519"], compression_algs=["none"],
                preferred_auth="publickey", login_timeout=spec["login_timeout"],
                keepalive_interval=0), spec["login_timeout"])
            chan, sess = await asyncio.wait_for(conn.create_session(
                Sess, tgt.get("command"), term_type="xterm", term_size=(200, 50),
                request_pty="force", encoding=None), spec["login_timeout"])
            # The login shell may be slow to start; wait until it runs our
            # line. The echo of the typed line holds RE''ADY; only the
            # command's output holds READY.
            chan.write(b"PS1='$ '; unset PROMPT_COMMAND; echo RE''ADY\r")
            await wait_for_text(sess, b"READY", spec["ready_timeout"])
            await asyncio.sleep(0.3)
            sess.buf.clear()
            open_ms.append((time.perf_counter() - t0) * 1000)
            sessions.append(Open(index, conn, chan, sess, tgt["name"]))
            kept = True
        except asyncssh.PermissionDenied as e:
            fail("auth refused", f"{tgt['name']}: {e}")
        except asyncssh.ChannelOpenError as e:
            fail("channel refused", f"{tgt['name']}: {e}")
        except asyncssh.DisconnectError as e:
            fail("disconnected", f"{tgt['name']}: {type(e).__name__}: {e}")
        except (asyncio.TimeoutError, TimeoutError) as e:
            fail("timeout", f"{tgt['name']}: {e}")
        except (OSError, ConnectionError, asyncssh.Error) as e:
            fail("connect error", f"{tgt['name']}: {type(e).__name__}: {e}")
        finally:
            if conn is not None and not kept:
                conn.close()

    # Ramp: session i starts at i / rate, with at most `inflight` logins
    # under way at once.
    sem = asyncio.Semaphore(spec["inflight"])
    tasks = []
    t_start = loop.time()

    async def guarded(i):
        try:
            await open_one(i)
        finally:
            sem.release()

    for i in range(n):
        delay = t_start + i / spec["rate"] - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await sem.acquire()
        tasks.append(asyncio.create_task(guarded(i)))
    await asyncio.gather(*tasks)
    ramp_s = loop.time() - t_start
    lost_in_ramp = sum(1 for s in sessions if s.sess.lost)
    emit({"event": "ramp_done", "opened": len(sessions), "ramp_s": round(ramp_s, 2),
          "failures": failures, "lost_before_hold": lost_in_ramp})

    # Hold: every session types one letter per interval, at its own phase.
    samples = []
    per_target = {}
    key_fail = {}
    hold = spec["hold"]
    interval = spec["interval"]
    emit({"event": "hold_start"})
    t_hold = loop.time()
    t_end = t_hold + hold

    def kfail(kind, detail):
        key_fail[kind] = key_fail.get(kind, 0) + 1
        if len(examples) < 40:
            examples.append(f"{kind}: {detail}"[:300])

    async def typist(s, phase):
        await asyncio.sleep(phase)
        k = 0
        next_at = t_hold + phase
        while next_at < t_end:
            if s.sess.lost:
                kfail("session lost", f"{s.target} #{s.index}: {s.sess.lost}")
                return
            ch = LETTERS[k % 26:k % 26 + 1]
            s.sess.fut = loop.create_future()
            s.sess.want = ch
            t0 = time.perf_counter()
            s.chan.write(ch)
            try:
                t1 = await asyncio.wait_for(s.sess.fut, spec["key_timeout"])
                ms = (t1 - t0) * 1000
                samples.append(ms)
                per_target.setdefault(s.target, []).append(ms)
            except (asyncio.TimeoutError, TimeoutError):
                s.sess.want = None
                kfail("echo timeout", f"{s.target} #{s.index}: no echo of {ch!r} within {spec['key_timeout']} s")
            except ConnectionError as e:
                kfail("session lost", f"{s.target} #{s.index}: {e}")
                return
            k += 1
            if k % 40 == 0:
                # Keep the line short: Ctrl-U kills it.
                s.chan.write(b"\x15")
            next_at += interval
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    await asyncio.gather(*(typist(s, rng.uniform(0, interval)) for s in sessions))
    emit({"event": "hold_end"})
    alive_at_end = sum(1 for s in sessions if not s.sess.lost)

    # Tear down: every connection closed, within a bound.
    for s in sessions:
        s.conn.close()
    try:
        await asyncio.wait_for(asyncio.gather(*(s.conn.wait_closed() for s in sessions),
                                              return_exceptions=True), 60)
    except asyncio.TimeoutError:
        pass
    emit({
        "event": "result",
        "opened": len(sessions),
        "alive_at_end": alive_at_end,
        "failures": failures,
        "keystroke_failures": key_fail,
        "examples": examples,
        "ramp_s": round(ramp_s, 2),
        "open_ms": summarize_ms(open_ms),
        "echo": summarize_ms(samples),
        "echo_per_target": {t: summarize_ms(v) for t, v in sorted(per_target.items())},
        "echo_histogram_ms": histogram_ms(samples),
        "client_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "client_cpu_s": round(sum(os.times()[:2]), 2),
    })


# ================================================================ orchestrator


def load_bench_run():
    path = os.path.join(HERE, "run")
    loader = importlib.machinery.SourceFileLoader("bench_run", path)
    spec = importlib.util.spec_from_loader("bench_run", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def pg_bin_dir():
    best = None
    try:
        names = os.listdir("/usr/lib/postgresql")
    except OSError:
        names = []
    for name in names:
        if not name.isdigit():
            continue
        d = os.path.join("/usr/lib/postgresql", name, "bin")
        if os.access(os.path.join(d, "initdb"), os.X_OK) and (best is None or int(name) > best[0]):
            best = (int(name), d)
    if best:
        return best[1]
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def ptys_in_use():
    try:
        with open("/proc/sys/kernel/pty/nr") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


def pty_max():
    try:
        with open("/proc/sys/kernel/pty/max") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def make_rig_class(br):
    class Rig(br.Rig):
        """One target sshd, one jump sshd, PostgreSQL, two Gatehouse nodes."""

        def setup(self, pg_bin):
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
            args, p = self.args, self.p
            for d in ("keys", "shared", "shared/data", "shared/policies", "shared/recordings",
                      "shared/reports", "node-a", "node-a/data", "node-b", "node-b/data", "logs"):
                os.makedirs(p(d), exist_ok=True)
            self.client_key = p("keys/client")
            k = br.make_keys(p, "shared/data")
            target_fp, gh_host_pub, client_pub = k["target_fp"], k["gh_host"], k["client"]
            target_host_pub, jump_host_pub = k["target_host"], k["jump_host"]
            # For the jump's own `ssh` to the target (OpenSSH known_hosts).
            with open(p("keys/known_hosts"), "w") as f:
                f.write(f"bench-target {' '.join(target_host_pub.split()[:2])}\n")

            ports = br.free_ports(5)
            self.target_port, self.jump_port, self.pg_port = ports[0], ports[1], ports[2]
            self.gh_ports = {"node-a": ports[3], "node-b": ports[4]}
            key_of = lambda pub: " ".join(pub.split()[:2])
            self.known_hosts = [f"[127.0.0.1]:{self.jump_port} {key_of(jump_host_pub)}"] + [
                f"[127.0.0.1]:{port} {key_of(gh_host_pub)}" for port in self.gh_ports.values()]

            # sshds: PTYs allowed (the default), limits raised for N sessions.
            raise_limits = (f"MaxStartups {4 * args.sessions}:100:{8 * args.sessions}\n"
                            "MaxSessions 100\nLoginGraceTime 120\n")
            cfg = p("sshd_target.conf")
            self.write_sshd_config(cfg, self.target_port, p("keys/target_host"),
                                   p("keys/target_authorized_keys"),
                                   f"Ciphers {br.CIPHERS[args.cipher]}\nAllowTcpForwarding no\n"
                                   # Every session's shell, whichever path: an
                                   # interactive bash without rc files (root's
                                   # login files here run `pyenv init`, 0.45 s
                                   # of CPU per login: 1,000 logins would be
                                   # mostly that).
                                   f"ForceCommand exec {TARGET_SHELL}\n")
            self._raise_sshd_limits(cfg, raise_limits)
            self.target_proc = self.start_sshd("sshd-target", cfg)
            self.target_procs = {"target": self.target_proc}
            cfg = p("sshd_jump.conf")
            self.write_sshd_config(cfg, self.jump_port, p("keys/jump_host"),
                                   p("keys/jump_authorized_keys"),
                                   f"Ciphers {br.CIPHERS[args.cipher]}\nAllowTcpForwarding no\n")
            self._raise_sshd_limits(cfg, raise_limits)
            self.jump_proc = self.start_sshd("sshd-jump", cfg)
            self.write_jump_inner_config(args.cipher, br.CIPHERS[args.cipher])

            self.start_postgres(pg_bin)

            with open(p("shared/policies/bench.toml"), "w") as f:
                f.write(f'''[[user]]
name = "alice"
keys = ["{client_pub}"]
groups = ["bench"]

''' + "\n".join(f'''[[server]]
name = "t-{rec}"
address = "127.0.0.1:{self.target_port}"
host_key = "{target_fp}"
mode = "ssh-forwarding"
accounts = ["root"]
allow = ["group:bench"]
ports = [{self.target_port}]
record = "{'always' if rec == 'rec' else 'never'}"
''' for rec in ("rec", "norec")))
            self.gh_nodes = {}
            self.gh_procs = {}
            for node, port in self.gh_ports.items():
                sh = lambda rel: json.dumps(p("shared", rel))
                with open(p(node, "gatehouse.toml"), "w") as f:
                    f.write(f'''[server]
listen = "127.0.0.1:{port}"
node = "{node}"
host_key = {sh("data/ssh_host_ed25519_key")}
identity_key = {sh("data/identity_ed25519_key")}
signing_key = {sh("data/signing_ed25519.pk8")}
master_key = {sh("data/master.key")}
policies = {sh("policies")}
recordings = {sh("recordings")}
reports = {sh("reports")}
database = "{self.pg_url}"

[limits]
auth_per_minute_per_source = 100000
max_startups = {max(100, 2 * args.inflight)}
login_grace_time = "120s"
idle_timeout = "2h"
''')
            br.wait_banner(self.target_port, self.target_proc, "sshd-target")
            br.wait_banner(self.jump_port, self.jump_proc, "sshd-jump")
            # One after the other: the first creates the shared keys and
            # migrates the database.
            for node in self.gh_ports:
                self.start_node(node)

        @staticmethod
        def _raise_sshd_limits(cfg, extra):
            with open(cfg) as f:
                text = f.read()
            keep = [line for line in text.splitlines()
                    if not line.startswith(("MaxStartups", "MaxSessions"))]
            with open(cfg, "w") as f:
                f.write("\n".join(keep) + "\n" + extra)

        def start_postgres(self, pg_bin):
            if not pg_bin:
                raise br.BenchError("PostgreSQL's initdb not found (/usr/lib/postgresql/*/bin or PATH): "
                                    "apt-get install -y postgresql (scripts/setup does)")
            # PostgreSQL refuses root: its folder belongs to `postgres`,
            # apart from our 0700 temp folder.
            import pwd
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise br.BenchError("no `postgres` system user: apt-get install -y postgresql")
            self.pg_dir = tempfile.mkdtemp(prefix="gatehouse-pty-pg-")
            os.chown(self.pg_dir, pw.pw_uid, pw.pw_gid)
            data = os.path.join(self.pg_dir, "data")
            as_pg = ["runuser", "-u", "postgres", "--"]
            br.run(as_pg + [os.path.join(pg_bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
                            "-E", "UTF8", "--locale=C", "--no-sync"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=120, cwd=self.pg_dir)
            self.pg_proc = self.procs.start_daemon(
                "postgres",
                as_pg + [os.path.join(pg_bin, "postgres"), "-D", data, "-F", "-c", "fsync=off",
                         "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
                         "-c", "listen_addresses=127.0.0.1", "-p", str(self.pg_port),
                         "-c", f"unix_socket_directories={self.pg_dir}", "-c", "max_connections=100"],
                self.p("logs/postgres.log"))
            self.psql_bin = os.path.join(pg_bin, "psql")
            deadline = time.monotonic() + 60
            while True:
                if self.pg_proc.poll() is not None:
                    raise br.BenchError(f"postgres exited {self.pg_proc.returncode} (logs/postgres.log)")
                r = subprocess.run([os.path.join(pg_bin, "pg_isready"), "-q", "-h", "127.0.0.1",
                                    "-p", str(self.pg_port)], timeout=10)
                if r.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise br.BenchError("postgres not ready within 60 s")
                time.sleep(0.2)
            self.pg_url = f"postgres://postgres@127.0.0.1:{self.pg_port}/postgres"

        def psql(self, sql):
            r = subprocess.run([self.psql_bin, "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "postgres",
                                "-d", "postgres", "-AtF", "\t", "-c", sql],
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise br.BenchError(f"psql: {r.stderr.strip()}")
            return [line.split("\t") for line in r.stdout.splitlines() if line]

        def start_node(self, node):
            proc = self.procs.start_daemon(
                f"gatehouse-{node}", [self.bin, "--config", self.p(node, "gatehouse.toml"), "serve"],
                self.p("logs", f"gatehouse-{node}.log"))
            self.gh_procs[node] = proc
            br.wait_banner(self.gh_ports[node], proc, f"gatehouse-{node}")

        def write_jump_inner_config(self, cid, cipher):
            with open(self.jump_inner_config(cid), "w") as f:
                f.write(f"""Host target
  HostName 127.0.0.1
  Port {self.target_port}
  HostKeyAlias bench-target
""" + self.common_options(cipher, self.p("keys/jump_client")))

        def restart_nodes(self):
            for node in self.gh_ports:
                self.procs.stop_daemon(self.gh_procs[node])
            for node in self.gh_ports:
                self.start_node(node)

        def targets(self, path):
            if path.startswith("gh-"):
                return [{"name": node, "port": port, "username": f"alice+root@t-{path[3:]}", "command": None}
                        for node, port in self.gh_ports.items()]
            inner = " ".join(["ssh", "-F", self.jump_inner_config(self.args.cipher), "-tt", "target"])
            return [{"name": "jump", "port": self.jump_port, "username": "root", "command": inner}]

        def check_alive(self):
            for name, proc in self.procs.daemons:
                if proc.poll() is not None:
                    raise br.BenchError(f"{name} exited with status {proc.returncode} "
                                        f"(see logs in {self.tmp}/logs)")

    return Rig


def ensure_venv(args, tmp, br):
    if args.venv:
        py = os.path.join(args.venv, "bin", "python")
        if not os.access(py, os.X_OK):
            raise br.BenchError(f"--venv {args.venv}: no bin/python there")
    else:
        venv = os.path.join(tmp, "venv")
        br.log(f"creating a venv with asyncssh in {venv} (pip)")
        br.run([sys.executable, "-m", "venv", venv], timeout=300)
        py = os.path.join(venv, "bin", "python")
        br.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "asyncssh"], timeout=600)
    r = subprocess.run([py, "-c", "import asyncssh; print(asyncssh.__version__)"],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise br.BenchError(f"asyncssh not importable in the venv: {r.stderr.strip()}")
    return py, r.stdout.strip()


class Client:
    """The load client process and its line protocol."""

    def __init__(self, procs, argv, log_path):
        self.err = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.err, start_new_session=True)
        procs.clients.append(self.proc)
        self.buf = b""

    def next_event(self, timeout, br):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise br.BenchError(f"load client: no event within {timeout:.0f} s")
            r, _, _ = select.select([fd], [], [], min(left, 1.0))
            if r:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise br.BenchError(f"load client exited ({self.proc.wait(timeout=10)}) "
                                        f"without finishing; see its log")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            raise br.BenchError(f"load client wrote {line[:200]!r}")


def mem_sum(br, pids):
    rss = pss = n = 0
    for pid in pids:
        m = br.mem_rollup(pid)
        if m:
            rss, pss, n = rss + m[0], pss + m[1], n + 1
    return rss, pss, n


def proxy_mem(br, rig, path, kinds=None):
    if path.startswith("gh-"):
        return mem_sum(br, [p.pid for p in rig.gh_procs.values()])
    return br.tree_mem(rig.jump_proc.pid, kinds)


def proxy_cpu_ticks(br, rig, path):
    if path.startswith("gh-"):
        return sum(br.own_cpu_ticks(p.pid) for p in rig.gh_procs.values())
    return br.tree_cpu_ticks(rig.jump_proc.pid)


def wait_drained(br, rig, timeout=120):
    """Until the jump and the target have no per-connection children left and
    the Gatehouse nodes' CPU stopped moving (sessions sealed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not br.descendants(rig.jump_proc.pid) and not br.descendants(rig.target_proc.pid):
            break
        time.sleep(0.2)
    else:
        return False
    last, still = None, 0
    while time.monotonic() < deadline:
        now = sum(br.own_cpu_ticks(p.pid) for p in rig.gh_procs.values())
        still = still + 1 if now == last else 0
        if still >= 3:
            return True
        last = now
        time.sleep(0.3)
    return False


def run_phase(br, rig, args, path, py, deadline):
    n = args.sessions
    br.check_deadline(deadline)
    rig.check_alive()
    if not wait_drained(br, rig):
        br.log("warning: earlier sessions still draining")
    need_ptys = n * (2 if path == "jump" else 1)
    mx = pty_max()
    if mx is not None and ptys_in_use() + need_ptys + 16 > mx:
        raise br.BenchError(f"{path}: {need_ptys} PTYs needed, {ptys_in_use()} in use, "
                            f"kernel.pty.max {mx}: raise it (sysctl kernel.pty.max)")
    spec = {
        "targets": rig.targets(path), "key": rig.client_key, "known_hosts": rig.known_hosts,
        "kex": br.KEX, "cipher": br.CIPHERS[args.cipher], "sessions": n, "rate": args.rate,
        "inflight": args.inflight, "hold": args.hold, "interval": args.interval,
        "key_timeout": args.key_timeout, "login_timeout": args.login_timeout,
        "ready_timeout": args.ready_timeout, "seed": args.seed,
    }
    spec_path = rig.p(f"client-{path}.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    time.sleep(1.0)
    base = proxy_mem(br, rig, path)
    target_base = br.tree_mem(rig.target_proc.pid)
    br.log(f"{path}: opening {n} PTY sessions at {args.rate}/s (at most {args.inflight} logins at once)")
    client = Client(rig.procs, [py, os.path.abspath(__file__), "--client", spec_path],
                    rig.p("logs", f"client-{path}.log"))
    out = {"path": path, "sessions": n}
    try:
        ev = client.next_event(n / args.rate + args.login_timeout + args.ready_timeout + 120, br)
        if ev.get("event") != "ramp_done":
            raise br.BenchError(f"load client: expected ramp_done, got {ev}")
        out["ramp"] = ev
        br.log(f"{path}: {ev['opened']}/{n} open in {ev['ramp_s']} s; failures {ev['failures'] or 'none'}")
        ev = client.next_event(30, br)
        if ev.get("event") != "hold_start":
            raise br.BenchError(f"load client: expected hold_start, got {ev}")
        cpu0, t0 = proxy_cpu_ticks(br, rig, path), time.monotonic()
        target_cpu0 = br.tree_cpu_ticks(rig.target_proc.pid)
        # Memory mid-hold: every session open and typing.
        time.sleep(args.hold / 2)
        kinds = {}
        loaded = proxy_mem(br, rig, path, kinds if path == "jump" else None)
        target_loaded = br.tree_mem(rig.target_proc.pid)
        client_mem = br.mem_rollup(client.proc.pid)
        if path.startswith("gh-"):
            live = rig.psql("SELECT node, count(*) FROM sessions WHERE ended_at IS NULL GROUP BY node ORDER BY node")
            out["live_sessions_per_node_mid_hold"] = {row[0]: int(row[1]) for row in live}
            out["node_rss_kib_mid_hold"] = {node: br.status_field(p.pid, "VmRSS")
                                           for node, p in rig.gh_procs.items()}
            out["node_threads_mid_hold"] = {node: br.status_field(p.pid, "Threads")
                                           for node, p in rig.gh_procs.items()}
        ev = client.next_event(args.hold + args.key_timeout + 60, br)
        if ev.get("event") != "hold_end":
            raise br.BenchError(f"load client: expected hold_end, got {ev}")
        cpu1, t1 = proxy_cpu_ticks(br, rig, path), time.monotonic()
        target_cpu1 = br.tree_cpu_ticks(rig.target_proc.pid)
        ev = client.next_event(120, br)
        if ev.get("event") != "result":
            raise br.BenchError(f"load client: expected result, got {ev}")
        client.proc.wait(timeout=60)
    finally:
        rig.procs.kill_clients([client.proc])
        client.err.close()
    res = ev
    opened = res["opened"]
    per = lambda a, b: round((a - b) / opened, 1) if opened else None
    out.update({
        "opened": opened,
        "alive_at_end": res["alive_at_end"],
        "failures": res["failures"],
        "keystroke_failures": res["keystroke_failures"],
        "refusals_or_failures": sum(res["failures"].values()) + sum(res["keystroke_failures"].values())
        + (n - opened - sum(res["failures"].values())),
        "examples": res["examples"],
        "open_ms": res["open_ms"],
        "echo": res["echo"],
        "echo_per_target": res["echo_per_target"],
        "echo_histogram_ms": res["echo_histogram_ms"],
        "memory": {
            "baseline_rss_kib": base[0], "baseline_pss_kib": base[1], "baseline_processes": base[2],
            "loaded_rss_kib": loaded[0], "loaded_pss_kib": loaded[1], "loaded_processes": loaded[2],
            "rss_kib_per_session": per(loaded[0], base[0]),
            "pss_kib_per_session": per(loaded[1], base[1]),
            "target_pss_kib_per_session": per(target_loaded[1], target_base[1]),
            "target_loaded_processes": target_loaded[2],
        },
        "proxy_cpu_s_during_hold": round((cpu1 - cpu0) / br.CLK_TCK, 2),
        "target_cpu_s_during_hold": round((target_cpu1 - target_cpu0) / br.CLK_TCK, 2),
        "hold_wall_s": round(t1 - t0, 1),
        "client_maxrss_kib": res["client_maxrss_kib"],
        "client_pss_kib_mid_hold": client_mem[1] if client_mem else None,
        "client_cpu_s": res["client_cpu_s"],
        "loadavg_after": br.loadavg(),
    })
    if path == "jump":
        out["memory"]["loaded_process_titles"] = kinds
    e = out["echo"]
    br.log(f"{path}: echo median {e.get('median_ms')} ms, p99 {e.get('p99_ms')} ms, max {e.get('max_ms')} ms "
           f"({e.get('n')} keystrokes); PSS {out['memory']['pss_kib_per_session']} KiB/session; "
           f"refusals/failures {out['refusals_or_failures']}")
    rig.check_alive()
    return out


def gatehouse_audit(rig):
    rows = rig.psql("SELECT kind, count(*) FROM audit_events GROUP BY kind ORDER BY kind")
    return {row[0]: int(row[1]) for row in rows}


def log_warnings(rig, node):
    """Lines of a node's log at WARN or ERROR level."""
    out = []
    try:
        with open(rig.p("logs", f"gatehouse-{node}.log"), errors="replace") as f:
            for line in f:
                line = ANSI.sub("", line).strip()
                words = line.split()
                if "running as root" in line:
                    continue  # expected: the bench runs the nodes as root
                if "WARN" in words[:3] or "ERROR" in words[:3] or "panicked" in line:
                    out.append(line[:300])
    except OSError:
        pass
    return out


def ratio(a, b):
    if a is None or not b:
        return None
    return round(a / b, 2)


def render(res):
    lines = []
    m = res.get("machine", {})
    c = res.get("config", {})
    lines.append(f"Gatehouse PTY sessions bench {res.get('date')}  ({m.get('nproc')} CPUs, {m.get('cpu_model')}; "
                 f"{m.get('openssh')}; gatehouse {m.get('gatehouse_commit')}; asyncssh {res.get('asyncssh')})")
    lines.append(f"{c.get('sessions')} sessions per path ({c.get('nodes')} Gatehouse nodes, round robin), "
                 f"ramp {c.get('rate')}/s, hold {c.get('hold_s')} s, one keystroke per {c.get('interval_s')} s "
                 f"per session (random phase), recording {c.get('record')}, {c.get('cipher')}; phases sequential "
                 f"({', '.join(c.get('order', []))}). Load average at start {m.get('loadavg_start')}, "
                 f"end {res.get('loadavg_end')}.")
    phases = res.get("phases", {})
    if phases:
        j = phases.get("jump", {})
        jm = (j.get("memory") or {}).get("pss_kib_per_session")
        je = j.get("echo") or {}
        lines.append("")
        lines.append("| path | opened | refusals/failures | echo median ms | p99 ms | max ms | keystrokes | "
                     "median / jump | p99 / jump | PSS KiB/session | PSS / jump | proxy CPU s in hold |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for path in res.get("config", {}).get("order", []):
            ph = phases.get(path)
            if not ph:
                continue
            e = ph.get("echo", {})
            mem = ph.get("memory", {})
            lines.append(
                f"| {PATH_LABEL[path]} | {ph.get('opened')}/{ph.get('sessions')} | {ph.get('refusals_or_failures')} | "
                f"{e.get('median_ms')} | {e.get('p99_ms')} | {e.get('max_ms')} | {e.get('n')} | "
                f"{ratio(e.get('median_ms'), je.get('median_ms'))} | {ratio(e.get('p99_ms'), je.get('p99_ms'))} | "
                f"{mem.get('pss_kib_per_session')} | {ratio(mem.get('pss_kib_per_session'), jm)} | "
                f"{ph.get('proxy_cpu_s_during_hold')} |")
        for path in res.get("config", {}).get("order", []):
            ph = phases.get(path)
            if not ph:
                continue
            lines.append("")
            o = ph.get("open_ms", {})
            lines.append(f"{PATH_LABEL[path]}: ramp {ph.get('ramp', {}).get('ramp_s')} s; login to first "
                         f"prompt median {o.get('median_ms')} ms, p99 {o.get('p99_ms')} ms; "
                         f"baseline PSS {ph['memory']['baseline_pss_kib']} KiB, loaded "
                         f"{ph['memory']['loaded_pss_kib']} KiB ({ph['memory']['loaded_processes']} processes); "
                         f"target sshd tree {ph['memory']['target_pss_kib_per_session']} KiB/session; "
                         f"client PSS {ph.get('client_pss_kib_mid_hold')} KiB, CPU {ph.get('client_cpu_s')} s")
            if ph.get("live_sessions_per_node_mid_hold") is not None:
                lines.append(f"  live sessions per node (database, mid-hold): {ph['live_sessions_per_node_mid_hold']}; "
                             f"echo per node: " + ", ".join(
                                 f"{t} median {s.get('median_ms')} p99 {s.get('p99_ms')}"
                                 for t, s in ph.get("echo_per_target", {}).items()))
            if ph.get("failures") or ph.get("keystroke_failures"):
                lines.append(f"  failures: {ph.get('failures')} keystrokes: {ph.get('keystroke_failures')}")
                for ex in ph.get("examples", [])[:5]:
                    lines.append(f"    {ex}")
    if res.get("gatehouse_audit_kinds"):
        lines.append("")
        lines.append(f"Gatehouse audit events by kind: {res['gatehouse_audit_kinds']}")
    for node, w in (res.get("gatehouse_log_warnings") or {}).items():
        if w:
            lines.append(f"{node}: {len(w)} WARN/ERROR log lines, first: {w[0]}")
    if res.get("bar"):
        lines.append("")
        lines.append("The bar (issue 10, item 8)")
        for b in res["bar"]:
            lines.append(f"  [{'holds' if b['holds'] else 'FAILS'}] {b['claim']}: {b['detail']}")
    if res.get("error"):
        lines.append("")
        lines.append(f"ERROR: {res['error']}")
    return "\n".join(lines)


def build_bar(res):
    bar = []
    ph = res.get("phases", {})
    j = ph.get("jump")
    gh = [(p, ph[p]) for p in ("gh-rec", "gh-norec", "gatehouse") if p in ph]
    for path, g in gh:
        bar.append({
            "claim": f"{g['sessions']} sessions across two nodes ({PATH_LABEL[path]}), held "
                     f"{res['config']['hold_s']} s, no refusals",
            "holds": g["refusals_or_failures"] == 0 and g["opened"] == g["sessions"] and g["alive_at_end"] == g["sessions"],
            "detail": f"opened {g['opened']}, alive at end {g['alive_at_end']}, refusals/failures "
                      f"{g['refusals_or_failures']}",
        })
    if gh:
        audit = res.get("gatehouse_audit_kinds") or {}
        refusals = {k: v for k, v in audit.items() if k in REFUSAL_KINDS}
        want = sum(g["sessions"] for _, g in gh)
        bar.append({
            "claim": "no refusal in Gatehouse's audit log (both nodes, every phase)",
            "holds": not refusals and audit.get("session.start", 0) >= want,
            "detail": f"refusal events {refusals or 'none'}; session.start {audit.get('session.start', 0)}, "
                      f"session.end {audit.get('session.end', 0)} (sessions opened: {want})",
        })
    for path, g in gh:
        if not (j and g["echo"].get("n") and j["echo"].get("n")):
            continue
        for q in ("median_ms", "p99_ms"):
            bar.append({
                "claim": f"keystroke echo {q[:-3]} ({PATH_LABEL[path]}) not above the terminating jump's",
                "holds": g["echo"][q] <= j["echo"][q],
                "detail": f"{g['echo'][q]} vs {j['echo'][q]} ms (ratio {ratio(g['echo'][q], j['echo'][q])})",
            })
        gm, jm = g["memory"]["pss_kib_per_session"], j["memory"]["pss_kib_per_session"]
        bar.append({
            "claim": f"memory per session ({PATH_LABEL[path]}) below the terminating jump's (PSS)",
            "holds": gm is not None and jm is not None and gm < jm,
            "detail": f"{gm} vs {jm} KiB/session (ratio {ratio(gm, jm)})",
        })
    return bar


def orchestrate(args):
    br = load_bench_run()
    if os.geteuid() != 0:
        print("error: run as root (the sshds log in as root; PostgreSQL runs as `postgres`)", file=sys.stderr)
        return 2
    nofile = raise_nofile(max(65536, 8 * args.sessions))
    out_path = args.out or os.path.join(HERE, "results", "pty_sessions.json")
    try:
        gatehouse_bin = br.build(args)
    except (br.BenchError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    started = time.monotonic()
    deadline = started + args.max_minutes * 60
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": br.machine_info(),
        "limits": {"nofile": nofile, "pty_max": pty_max(), "ptys_in_use_at_start": ptys_in_use()},
        "config": {
            "sessions": args.sessions, "nodes": 2, "rate": args.rate, "inflight": args.inflight,
            "hold_s": args.hold, "interval_s": args.interval, "key_timeout_s": args.key_timeout,
            "record": "per phase: gh-rec record = always, gh-norec record = never", "cipher": br.CIPHERS[args.cipher], "kex": br.KEX,
            "order": args.order, "client": "asyncssh (one asyncio process, same for both paths)",
        },
    }
    tmp = tempfile.mkdtemp(prefix="gatehouse-pty-")
    procs = br.Procs()
    rig = None

    def on_term(*_):
        raise KeyboardInterrupt("SIGTERM")

    old_term = signal.signal(signal.SIGTERM, on_term)
    status = 0
    try:
        py, results["asyncssh"] = ensure_venv(args, tmp, br)
        private_bin = os.path.join(tmp, "gatehouse")
        shutil.copy2(gatehouse_bin, private_bin)
        Rig = make_rig_class(br)
        rig = Rig(args, tmp, procs, private_bin)
        br.log(f"setting up in {tmp}")
        rig.setup(pg_bin_dir())
        results["phases"] = {}
        gh_phases = 0
        for path in args.order:
            if path.startswith("gh-"):
                if gh_phases:
                    # Fresh nodes, so a baseline owes nothing to the last
                    # phase (heap the allocator kept would hide the cost).
                    rig.restart_nodes()
                gh_phases += 1
            results["phases"][path] = run_phase(br, rig, args, path, py, deadline)
            if path.startswith("gh-"):
                wait_drained(br, rig)
        results["gatehouse_audit_kinds"] = gatehouse_audit(rig)
        results["gatehouse_log_warnings"] = {node: log_warnings(rig, node)[:20] for node in rig.gh_procs}
        results["gatehouse_peak_rss_kib"] = {node: br.status_field(p.pid, "VmHWM")
                                             for node, p in rig.gh_procs.items()}
        rig.check_alive()
    except (br.BenchError, OSError, subprocess.SubprocessError, KeyboardInterrupt) as e:
        results["error"] = f"{type(e).__name__}: {e}"
        status = 1
    finally:
        procs.stop_all()
        if rig is not None and getattr(rig, "pg_dir", None):
            shutil.rmtree(rig.pg_dir, ignore_errors=True)
        signal.signal(signal.SIGTERM, old_term)
        if args.keep or status:
            shutil.rmtree(os.path.join(tmp, "venv"), ignore_errors=True)
            br.log(f"kept {tmp} (logs in {tmp}/logs)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    results["loadavg_end"] = br.loadavg()
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    results["bar"] = build_bar(results)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    print(render(results))
    br.log(f"wrote {out_path} ({results['elapsed_s']} s)")
    return status


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=1000, help="sessions per path (default 1000)")
    ap.add_argument("--hold", type=float, default=60, help="seconds all sessions are held (default 60)")
    ap.add_argument("--interval", type=float, default=3.0,
                    help="seconds between one session's keystrokes (default 3)")
    ap.add_argument("--rate", type=float, default=25, help="sessions opened per second (default 25)")
    ap.add_argument("--inflight", type=int, default=40, help="logins under way at once at most (default 40)")
    ap.add_argument("--cipher", choices=["chacha20", "aes128gcm"], default="chacha20")
    ap.add_argument("--order", default="gh-rec,gh-norec,jump",
                    help="phases in order, any of gh-rec (Gatehouse, record = always), gh-norec "
                         "(record = never), jump (default gh-rec,gh-norec,jump)")
    ap.add_argument("--key-timeout", type=float, default=10, help="seconds to wait for one echo")
    ap.add_argument("--login-timeout", type=float, default=60, help="seconds per login")
    ap.add_argument("--ready-timeout", type=float, default=60, help="seconds for the shell's first line")
    ap.add_argument("--seed", type=int, default=1, help="random phases' seed")
    ap.add_argument("--venv", help="use this venv (with asyncssh) instead of making one")
    ap.add_argument("--out", help="JSON path (default bench/results/pty_sessions.json)")
    ap.add_argument("--gatehouse", help="use this gatehouse binary instead of building")
    ap.add_argument("--no-build", action="store_true", help="skip cargo build --release")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--max-minutes", type=float, default=30, help="abort the run after this long")
    ap.add_argument("--render", metavar="JSON", help="print the table of an earlier run's JSON and exit")
    ap.add_argument("--client", metavar="SPEC", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        return client_main(args.client)
    if args.render:
        with open(args.render) as f:
            print(render(json.load(f)))
        return 0
    args.order = [p.strip() for p in args.order.split(",") if p.strip()]
    if not args.order or not set(args.order) <= set(PATHS) or len(set(args.order)) != len(args.order):
        ap.error("--order takes gh-rec, gh-norec and/or jump, each once")
    if args.sessions < 2 or args.hold <= 0 or args.interval <= 0 or args.rate <= 0 or args.inflight < 1:
        ap.error("--sessions >= 2; --hold, --interval, --rate > 0; --inflight >= 1")
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
