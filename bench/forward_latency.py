#!/usr/bin/env python3
"""Gatehouse benchmark: `-L` forward throughput and keystroke echo latency.

Two measurements missing from bench/run, in one run, against OpenSSH, on
127.0.0.1 only:

  forward     a `-L` local forward pushing SIZE bytes into a sink service
              (upload) and pulling SIZE bytes from a source service
              (download), both python threads on loopback. Paths:
                jump        `ssh -N -L ... jump` through an OpenSSH sshd
                            (AllowTcpForwarding yes; the jump dials the service)
                gh-fw       Gatehouse, server mode "firewall" (the bastion
                            dials the service itself)
                gh-sf       Gatehouse, server mode "ssh-forwarding" (carried
                            through the target's sshd: one more SSH hop)
              Per pinned cipher: MB/s, ratio against the jump, and the
              proxy's CPU seconds per GB (bastion process vs the jump sshd's
              process tree; for gh-sf the target sshd tree is also given).
  keystroke   echo time of single keystrokes typed into an interactive PTY
              shell (`ssh -tt HOST`, a shell request), paths interleaved
              keystroke by keystroke:
                direct      straight to the target sshd
                jump-term   `ssh -tt jump "ssh -tt target"` (OpenSSH
                            terminating jump: two PTYs, two SSH legs)
                gh-shell    Gatehouse, recording on, deny_commands not empty,
                            so its line tracker parses every keystroke
              Median and p90 in ms, ratio against direct.

Reuses bench/run's helpers (loaded as a module). Prints a table, writes JSON
(bench/results/forward_latency.json or --out), and stops everything it
started, also on error and SIGTERM. See bench/README.md.
"""

import argparse
import datetime
import fcntl
import importlib.machinery
import importlib.util
import json
import os
import queue
import select
import shlex
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def load_bench_run():
    path = os.path.join(HERE, "run")
    loader = importlib.machinery.SourceFileLoader("bench_run", path)
    spec = importlib.util.spec_from_loader("bench_run", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


br = load_bench_run()
BenchError = br.BenchError
log = br.log
CIPHERS = br.CIPHERS
CHUNK = 1 << 20
FWD_PATHS = ["jump", "gh-fw", "gh-sf"]
FWD_LABEL = {
    "jump": "OpenSSH jump (-L via sshd)",
    "gh-fw": "Gatehouse firewall (direct)",
    "gh-sf": "Gatehouse ssh-forwarding",
}
KEY_PATHS = ["direct", "jump-term", "gh-shell"]
KEY_LABEL = {
    "direct": "direct",
    "jump-term": "OpenSSH terminating jump",
    "gh-shell": "Gatehouse (rec on, line tracker)",
}


# ---------------------------------------------------------------- services


class Services:
    """A sink (reads and discards, reports the count per connection) and a
    source (sends the size it is told, then closes), each a listening thread
    on 127.0.0.1 with one thread per connection."""

    def __init__(self, timeout):
        self.timeout = timeout
        self.sink_counts = queue.Queue()
        self.source_size = 0
        self.sink_progress = 0
        self.pulled = 0
        self.stop = threading.Event()
        self.sink = self._listen()
        self.source = self._listen()
        self.sink_port = self.sink.getsockname()[1]
        self.source_port = self.source.getsockname()[1]
        for sock, fn in ((self.sink, self._sink_conn), (self.source, self._source_conn)):
            threading.Thread(target=self._accept, args=(sock, fn), daemon=True).start()

    def _listen(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        s.settimeout(0.5)
        return s

    def _accept(self, sock, fn):
        while not self.stop.is_set():
            try:
                conn, _ = sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(self.timeout)
            threading.Thread(target=fn, args=(conn,), daemon=True).start()

    def _sink_conn(self, conn):
        buf = bytearray(CHUNK)
        total = 0
        try:
            while True:
                n = conn.recv_into(buf)
                if n == 0:
                    break
                total += n
                self.sink_progress = total
        except OSError:
            total = -1 - total  # marks a broken connection
        finally:
            conn.close()
        self.sink_counts.put(total)

    def _source_conn(self, conn):
        size = self.source_size
        block = memoryview(bytes(CHUNK))
        try:
            left = size
            while left > 0:
                n = min(left, CHUNK)
                conn.sendall(block[:n])
                left -= n
            conn.shutdown(socket.SHUT_WR)
            # Wait for the client's close so no byte is lost to a reset.
            while conn.recv(4096):
                pass
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stop.set()
        for s in (self.sink, self.source):
            try:
                s.close()
            except OSError:
                pass


def push(port, size, timeout):
    """Sends SIZE zero bytes to PORT, half-closes, waits for the far end's
    close (the sink closes after reading everything). Seconds taken."""
    block = memoryview(bytes(CHUNK))
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        left = size
        while left > 0:
            n = min(left, CHUNK)
            s.sendall(block[:n])
            left -= n
        s.shutdown(socket.SHUT_WR)
        while s.recv(4096):
            pass
    return time.perf_counter() - t0


def pull(port, timeout, svc):
    """Reads PORT until EOF. (bytes, seconds)."""
    buf = bytearray(CHUNK)
    total = 0
    svc.pulled = 0
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        while True:
            n = s.recv_into(buf)
            if n == 0:
                break
            total += n
            svc.pulled = total
    return total, time.perf_counter() - t0


def listening(port):
    """True when something listens on 127.0.0.1:PORT (from /proc/net/tcp,
    without connecting: a probe connection would open a forward)."""
    want = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1] == want and parts[3] == "0A":
                    return True
    except OSError:
        pass
    return False


# ---------------------------------------------------------------- rig


class Rig(br.Rig):
    def setup(self):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        p = self.p
        for d in ("keys", "gh", "gh/data", "gh/policies", "logs"):
            os.makedirs(p(d), exist_ok=True)
        k = br.make_keys(p, "gh/data")
        target_fp, gh_host_pub, client_pub = k["target_fp"], k["gh_host"], k["client"]
        target_host_pub, jump_host_pub = k["target_host"], k["jump_host"]
        with open(p("keys/known_hosts"), "w") as f:
            for alias, pub in (
                ("bench-target", target_host_pub),
                ("bench-jump", jump_host_pub),
                ("bench-gatehouse", gh_host_pub),
            ):
                f.write(f"{alias} {' '.join(pub.split()[:2])}\n")

        ports = br.free_ports(4)
        self.target_port = {"chacha20": ports[0], "aes128gcm": ports[1]}
        self.jump_port = ports[2]
        self.gh_port = ports[3]
        svc = self.services
        svc_ports = f"[{svc.sink_port}, {svc.source_port}]"

        self.target_procs = {}
        for cid, cipher in CIPHERS.items():
            cfg = p(f"sshd_target_{cid}.conf")
            # AllowTcpForwarding yes: mode ssh-forwarding carries the
            # forward through this sshd.
            self.write_sshd_config(cfg, self.target_port[cid], p("keys/target_host"),
                                   p("keys/target_authorized_keys"),
                                   f"Ciphers {cipher}\nAllowTcpForwarding yes\n")
            self.target_procs[cid] = self.start_sshd(f"sshd-target-{cid}", cfg)
        cfg = p("sshd_jump.conf")
        self.write_sshd_config(cfg, self.jump_port, p("keys/jump_host"),
                               p("keys/jump_authorized_keys"), "AllowTcpForwarding yes\n")
        self.jump_proc = self.start_sshd("sshd-jump", cfg)

        servers = []
        for cid in CIPHERS:
            common = f'''address = "127.0.0.1:{self.target_port[cid]}"
host_key = "{target_fp}"
accounts = ["root"]
allow = ["group:bench"]
'''
            servers.append(f'''[[server]]
name = "t-{cid}-fw"
{common}mode = "firewall"
allow_from = ["127.0.0.0/8"]
ports = {svc_ports}
record = "never"
''')
            servers.append(f'''[[server]]
name = "t-{cid}-sf"
{common}mode = "ssh-forwarding"
ports = {svc_ports}
record = "never"
''')
            servers.append(f'''[[server]]
name = "t-{cid}-sh"
{common}mode = "ssh-forwarding"
ports = [{self.target_port[cid]}]
record = "always"
deny_commands = ["reboot*", "shutdown*", "rm -rf /*"]
''')
        with open(p("gh/policies/bench.toml"), "w") as f:
            f.write(f'''[[user]]
name = "alice"
keys = ["{client_pub}"]
groups = ["bench"]

''' + "\n".join(servers))
        with open(p("gh/gatehouse.toml"), "w") as f:
            f.write(f'''[server]
listen = "127.0.0.1:{self.gh_port}"

[limits]
auth_per_minute_per_source = 100000
max_startups = 1000
idle_timeout = "2h"
''')
        for cid, proc in self.target_procs.items():
            br.wait_banner(self.target_port[cid], proc, f"sshd-target-{cid}")
        br.wait_banner(self.jump_port, self.jump_proc, "sshd-jump")
        self.start_gatehouse()
        for cid, cipher in CIPHERS.items():
            self.write_client_config(cid, cipher)
            self.write_jump_inner_config(cid, cipher)

    def write_client_config(self, cid, cipher):
        tp = self.target_port[cid]
        gh = lambda name: f"""Host gh-{name}
  HostName 127.0.0.1
  Port {self.gh_port}
  HostKeyAlias bench-gatehouse
  User alice+root@t-{cid}-{name}
"""
        with open(self.client_config(cid), "w") as f:
            f.write(f"""Host target
  HostName 127.0.0.1
  Port {tp}
  HostKeyAlias bench-target
Host jump
  HostName 127.0.0.1
  Port {self.jump_port}
  HostKeyAlias bench-jump
""" + gh("fw") + gh("sf") + gh("sh") + self.common_options(cipher, self.p("keys/client")))

    def target_tree_ticks(self, cid):
        return br.tree_cpu_ticks(self.target_procs[cid].pid)


# ---------------------------------------------------------------- forwards


def start_forward(rig, args, cid, path):
    svc = rig.services
    lports = br.free_ports(2)
    host = {"jump": "jump", "gh-fw": "gh-fw", "gh-sf": "gh-sf"}[path]
    argv = ["ssh", "-F", rig.client_config(cid), "-N", "-o", "ExitOnForwardFailure=yes",
            "-L", f"127.0.0.1:{lports[0]}:127.0.0.1:{svc.sink_port}",
            "-L", f"127.0.0.1:{lports[1]}:127.0.0.1:{svc.source_port}", host]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, start_new_session=True)
    rig.procs.clients.append(p)
    deadline = time.monotonic() + 60
    while not (listening(lports[0]) and listening(lports[1])):
        if p.poll() is not None:
            err = p.stderr.read().decode(errors="replace").strip()
            raise BenchError(f"forward {cid} {path}: ssh exited {p.returncode}: {err}")
        if time.monotonic() > deadline:
            raise BenchError(f"forward {cid} {path}: ports not listening after 60 s")
        time.sleep(0.05)
    return p, lports


def drain_sink(svc):
    while True:
        try:
            svc.sink_counts.get_nowait()
        except queue.Empty:
            return


def one_upload(svc, port, size, timeout):
    drain_sink(svc)
    svc.sink_progress = 0
    try:
        dt = push(port, size, timeout)
    except OSError as e:
        raise BenchError(f"upload stalled or failed ({e}): the sink had {svc.sink_progress} "
                         f"of {size} bytes after {timeout} s without progress")
    try:
        got = svc.sink_counts.get(timeout=30)
    except queue.Empty:
        raise BenchError("sink reported no count")
    if got != size:
        raise BenchError(f"sink got {got} bytes, expected {size}")
    return dt


def one_download(svc, port, size, timeout):
    svc.source_size = size
    try:
        got, dt = pull(port, timeout, svc)
    except OSError as e:
        raise BenchError(f"download stalled or failed ({e}): {svc.pulled} of {size} bytes "
                         f"arrived, then {timeout} s without progress")
    if got != size:
        raise BenchError(f"pulled {got} bytes, expected {size}")
    return dt


def measure_forwards(rig, args, deadline):
    """One `ssh -N -L` client per (cipher, path, direction), so a stalled
    transfer cannot spoil the next one; a failed transfer is recorded as
    such (with the bytes that did arrive) and the run goes on."""
    svc = rig.services
    rows = []
    for rep in range(args.repeat):
        for cid in args.ciphers:
            for direction in args.directions:
                for path in args.fwd_paths:
                    br.check_deadline(deadline)
                    rig.wait_jump_idle()
                    rows.append(one_forward(rig, args, cid, path, direction, rep))
                    rig.check_alive()
    return rows


def one_forward(rig, args, cid, path, direction, rep):
    svc = rig.services
    row = {"cipher": CIPHERS[cid], "path": path, "direction": direction,
           "repeat": rep, "bytes": args.size}
    p, (lsink, lsource) = start_forward(rig, args, cid, path)
    try:
        # Warm-up, not timed: the first forward may open the bastion's leg
        # to the target (ssh-forwarding). Small, in the measured direction.
        if direction == "upload":
            one_upload(svc, lsink, 64 << 10, args.transfer_timeout)
        else:
            one_download(svc, lsource, 64 << 10, args.transfer_timeout)
        rig.wait_gh_settled()
        jump0 = br.tree_cpu_ticks(rig.jump_proc.pid)
        gh0 = br.own_cpu_ticks(rig.gh_proc.pid)
        tgt0 = rig.target_tree_ticks(cid)
        if direction == "upload":
            dt = one_upload(svc, lsink, args.size, args.transfer_timeout)
        else:
            dt = one_download(svc, lsource, args.size, args.transfer_timeout)
        rig.wait_gh_settled(timeout=10)
        jump_cpu = (br.tree_cpu_ticks(rig.jump_proc.pid) - jump0) / br.CLK_TCK
        gh_cpu = (br.own_cpu_ticks(rig.gh_proc.pid) - gh0) / br.CLK_TCK
        tgt_cpu = (rig.target_tree_ticks(cid) - tgt0) / br.CLK_TCK
        gb = args.size / 1e9
        proxy = jump_cpu if path == "jump" else gh_cpu
        la = br.loadavg()
        row.update({
            "seconds": round(dt, 3),
            "mb_per_s": round(args.size / dt / 1e6, 1),
            "proxy_cpu_s": round(proxy, 2),
            "proxy_cpu_s_per_gb": round(proxy / gb, 2),
            "target_sshd_cpu_s_per_gb": round(tgt_cpu / gb, 2),
            "loadavg_1m": la[0] if la else None,
        })
        log(f"forward {cid} {path} {direction}: {row['mb_per_s']} MB/s, "
            f"proxy {row['proxy_cpu_s_per_gb']} CPU s/GB")
    except (BenchError, OSError) as e:
        row["error"] = f"{type(e).__name__}: {e}"
        log(f"forward {cid} {path} {direction}: FAILED: {row['error']}")
    finally:
        rig.procs.kill_clients([p])
    return row


def forward_medians(rows):
    groups = {}
    for r in rows:
        groups.setdefault((r["cipher"], r["direction"], r["path"]), []).append(r)
    out = {}
    for key, all_rs in groups.items():
        rs = [r for r in all_rs if "error" not in r]
        failed = len(all_rs) - len(rs)
        if not rs:
            out[key] = {"n": 0, "failed": failed, "error": all_rs[0]["error"]}
            continue
        out[key] = {
            "failed": failed,
            "mb_per_s": round(statistics.median(r["mb_per_s"] for r in rs), 1),
            "proxy_cpu_s_per_gb": round(statistics.median(r["proxy_cpu_s_per_gb"] for r in rs), 2),
            "target_sshd_cpu_s_per_gb": round(statistics.median(r["target_sshd_cpu_s_per_gb"] for r in rs), 2),
            "n": len(rs),
        }
    return out


# ---------------------------------------------------------------- keystrokes


class PtySession:
    """An `ssh -tt` client on a local pty we hold the master of."""

    def __init__(self, procs, argv, name):
        self.name = name
        self.master, slave = os.openpty()
        # A real window size, so every leg passes a sane one on.
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        procs.clients.append(self.proc)
        self.buf = b""

    def read_some(self, timeout):
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return b""
        try:
            data = os.read(self.master, 65536)
        except OSError:
            data = b""
        if not data:
            raise BenchError(f"{self.name}: session output ended: {self.buf[-300:]!r}")
        return data

    def wait_for(self, needle, timeout):
        deadline = time.monotonic() + timeout
        while needle not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"{self.name}: no {needle!r} within {timeout} s; last output {self.buf[-300:]!r}")
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name}: ssh exited {self.proc.returncode}; output {self.buf[-300:]!r}")
            self.buf += self.read_some(min(left, 0.5))
        self.buf = self.buf[self.buf.index(needle) + len(needle):]

    def drain(self, quiet=0.15, limit=5.0):
        end = time.monotonic() + limit
        while time.monotonic() < end:
            if not self.read_some(quiet):
                break
        self.buf = b""

    def send(self, data):
        os.write(self.master, data)

    def keystroke(self, ch, timeout):
        """Seconds from writing one byte to seeing it echoed."""
        self.buf = b""
        t0 = time.perf_counter()
        os.write(self.master, ch)
        deadline = t0 + timeout
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise BenchError(f"{self.name}: no echo of {ch!r} within {timeout} s")
            data = self.read_some(left)
            if ch in data:
                dt = time.perf_counter() - t0
                self.buf = data[data.index(ch) + 1:]
                return dt

    def close(self):
        try:
            os.close(self.master)
        except OSError:
            pass


def key_argv(rig, cid, path):
    cfg = rig.client_config(cid)
    if path == "direct":
        return ["ssh", "-F", cfg, "-tt", "target"]
    if path == "gh-shell":
        return ["ssh", "-F", cfg, "-tt", "gh-sh"]
    if path == "jump-term":
        inner = shlex.join(["ssh", "-F", rig.jump_inner_config(cid), "-tt", "target"])
        return ["ssh", "-F", cfg, "-tt", "jump", inner]
    raise ValueError(path)


def measure_keystrokes(rig, args, deadline):
    cid = args.key_cipher
    sessions = {}
    times = {path: [] for path in KEY_PATHS}
    try:
        for path in KEY_PATHS:
            s = PtySession(rig.procs, key_argv(rig, cid, path), path)
            sessions[path] = s
            # The login shell may be slow to start (root's ~/.bashrc); wait
            # until the shell runs our line. The echo of the typed line holds
            # RE''ADY; only the command's output holds READY.
            s.send(b"PS1='$ '; unset PROMPT_COMMAND; echo RE''ADY\r")
            s.wait_for(b"READY", 60)
            s.drain()
        log(f"keystrokes: {args.keys} per path, cipher {CIPHERS[cid]}, paths interleaved")
        letters = b"abcdefghijklmnopqrstuvwxyz"
        # Two warm-up keystrokes per path, not counted.
        for i in range(args.keys + 2):
            if i % 40 == 39:
                # Keep the line short: Ctrl-U kills it (the tracker follows).
                for s in sessions.values():
                    s.send(b"\x15")
                for s in sessions.values():
                    s.drain()
                br.check_deadline(deadline)
            ch = letters[i % 26:i % 26 + 1]
            for path in KEY_PATHS:
                dt = sessions[path].keystroke(ch, 10)
                if i >= 2:
                    times[path].append(dt * 1000)
                # A typist's gap: nothing queued behind the keystroke.
                time.sleep(args.key_gap)
        for s in sessions.values():
            s.send(b"\x15exit\r")
        time.sleep(0.5)
    finally:
        for s in sessions.values():
            s.close()
        rig.procs.kill_clients([s.proc for s in sessions.values()])
    out = {}
    for path, ts in times.items():
        out[path] = {
            "median_ms": round(statistics.median(ts), 3),
            "p90_ms": round(br.p90(ts), 3),
            "min_ms": round(min(ts), 3),
            "max_ms": round(max(ts), 3),
            "n": len(ts),
        }
    return {"cipher": CIPHERS[cid], "keys": args.keys, "gap_s": args.key_gap, "paths": out,
            "samples_ms": {p: [round(t, 3) for t in ts] for p, ts in times.items()}}


# ---------------------------------------------------------------- output


def ratio(a, b):
    if not a or not b:
        return None
    return round(a / b, 2)


def render(res):
    lines = []
    m = res.get("machine", {})
    lines.append(f"Gatehouse forward/keystroke bench, {res.get('date')}, "
                 f"{m.get('cpu_model', '?')} x{m.get('nproc', '?')}, "
                 f"load average start {res.get('loadavg_start')} end {res.get('loadavg_end')}")
    cfg = res.get("config", {})
    if res.get("forward_medians"):
        lines.append("")
        lines.append(f"Forward throughput (-L), {br.human_size(cfg.get('size_bytes', 0))} per transfer, "
                     f"median of {cfg.get('repeat')}; MB = 10^6 bytes")
        lines.append("")
        lines.append("| cipher | direction | path | MB/s | vs jump | proxy CPU s/GB | vs jump | target sshd CPU s/GB |")
        lines.append("|---|---|---|---|---|---|---|---|")
        med = {(r["cipher"], r["direction"], r["path"]): r for r in res["forward_medians"]}
        for (c, d, p), r in med.items():
            base = med.get((c, d, "jump"))
            if base and "mb_per_s" not in base:
                base = None
            if "mb_per_s" not in r:
                lines.append(f"| {c} | {d} | {FWD_LABEL[p]} | FAILED | - | - | - | - |")
                continue
            lines.append(
                f"| {c} | {d} | {FWD_LABEL[p]} | {r['mb_per_s']} | "
                f"{ratio(r['mb_per_s'], base['mb_per_s']) if base else '-'} | "
                f"{r['proxy_cpu_s_per_gb']} | "
                f"{ratio(r['proxy_cpu_s_per_gb'], base['proxy_cpu_s_per_gb']) if base else '-'} | "
                f"{r['target_sshd_cpu_s_per_gb'] if p == 'gh-sf' else '-'} |")
    k = res.get("keystrokes")
    if k:
        lines.append("")
        lines.append(f"Keystroke echo in a PTY shell, {k['keys']} keystrokes per path, "
                     f"{k['cipher']}, paths interleaved, {k['gap_s'] * 1000:.0f} ms gap")
        lines.append("")
        lines.append("| path | median ms | p90 ms | max ms | median vs direct | p90 vs direct |")
        lines.append("|---|---|---|---|---|---|")
        d = k["paths"].get("direct")
        for p, r in k["paths"].items():
            lines.append(f"| {KEY_LABEL[p]} | {r['median_ms']} | {r['p90_ms']} | {r['max_ms']} | "
                         f"{ratio(r['median_ms'], d['median_ms'])} | {ratio(r['p90_ms'], d['p90_ms'])} |")
    failures = [r for r in res.get("forward", []) if "error" in r]
    if failures:
        lines.append("")
        lines.append("Failed forward transfers:")
        for r in failures:
            lines.append(f"- {r['cipher']} {r['direction']} {FWD_LABEL[r['path']]}: {r['error']}")
    if res.get("error"):
        lines.append("")
        lines.append(f"ERROR: {res['error']}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="200 MiB per transfer, 100 keystrokes")
    ap.add_argument("--size", type=br.parse_size, help="bytes per forward transfer (default 1 GiB; quick 200M)")
    ap.add_argument("--repeat", type=int, default=1, help="forward transfers per (cipher, path, direction)")
    ap.add_argument("--ciphers", default="aes128gcm,chacha20", help="comma list of aes128gcm, chacha20")
    ap.add_argument("--directions", default="upload,download", help="comma list of upload, download")
    ap.add_argument("--fwd-paths", default=",".join(FWD_PATHS), help="comma list of jump, gh-fw, gh-sf")
    ap.add_argument("--keys", type=int, help="keystrokes per path (default 200; quick 100)")
    ap.add_argument("--key-gap", type=float, default=0.02, help="seconds between keystrokes")
    ap.add_argument("--key-cipher", default="chacha20", choices=list(CIPHERS))
    ap.add_argument("--only", default="forward,keystroke", help="comma list: forward, keystroke")
    ap.add_argument("--out", help="JSON path (default bench/results/forward_latency.json)")
    ap.add_argument("--gatehouse", help="use this gatehouse binary instead of building")
    ap.add_argument("--no-build", action="store_true", help="skip cargo build --release")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--transfer-timeout", type=float, default=30,
                    help="seconds without progress after which a transfer counts as stalled")
    ap.add_argument("--max-minutes", type=float, default=30, help="abort the run after this long")
    args = ap.parse_args()
    args.size = args.size or ((200 << 20) if args.quick else (1 << 30))
    args.keys = args.keys or (100 if args.quick else 200)
    args.ciphers = [c.strip() for c in args.ciphers.split(",") if c.strip()]
    args.directions = [d.strip() for d in args.directions.split(",") if d.strip()]
    args.fwd_paths = [p.strip() for p in args.fwd_paths.split(",") if p.strip()]
    if not set(args.fwd_paths) <= set(FWD_PATHS):
        ap.error("--fwd-paths takes jump, gh-fw, gh-sf")
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    for c in args.ciphers:
        if c not in CIPHERS:
            ap.error(f"unknown cipher {c}")
    for d in args.directions:
        if d not in ("upload", "download"):
            ap.error(f"unknown direction {d}")
    if not parts <= {"forward", "keystroke"}:
        ap.error("--only takes forward, keystroke")
    if args.repeat < 1 or args.keys < 1:
        ap.error("--repeat and --keys must be at least 1")
    if os.geteuid() != 0:
        ap.error("run as root: the OpenSSH sshd instances need it")
    out_path = args.out or os.path.join(HERE, "results", "forward_latency.json")
    try:
        gatehouse_bin = br.build(args)
    except (BenchError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    started = time.monotonic()
    deadline = started + args.max_minutes * 60
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": br.machine_info(),
        "loadavg_start": br.loadavg(),
        "config": {
            "size_bytes": args.size, "repeat": args.repeat,
            "ciphers": [CIPHERS[c] for c in args.ciphers], "directions": args.directions,
            "keys": args.keys, "key_gap_s": args.key_gap, "key_cipher": CIPHERS[args.key_cipher],
            "kex": br.KEX, "quick": args.quick,
        },
    }
    tmp = tempfile.mkdtemp(prefix="gatehouse-fwdlat-")
    procs = br.Procs()
    services = None

    def on_term(*_):
        raise KeyboardInterrupt("SIGTERM")

    old_term = signal.signal(signal.SIGTERM, on_term)
    status = 0
    try:
        private_bin = os.path.join(tmp, "gatehouse")
        shutil.copy2(gatehouse_bin, private_bin)
        services = Services(args.transfer_timeout)
        rig = Rig(args, tmp, procs, private_bin)
        rig.services = services
        log(f"setting up in {tmp}")
        rig.setup()
        if "keystroke" in parts:
            results["keystrokes"] = measure_keystrokes(rig, args, deadline)
        if "forward" in parts:
            results["forward"] = measure_forwards(rig, args, deadline)
        rig.check_alive()
    except (BenchError, OSError, subprocess.SubprocessError, KeyboardInterrupt) as e:
        results["error"] = f"{type(e).__name__}: {e}"
        status = 1
    finally:
        procs.stop_all()
        if services:
            services.close()
        signal.signal(signal.SIGTERM, old_term)
        if args.keep or status:
            shutil.rmtree(os.path.join(tmp, "gh", "recordings"), ignore_errors=True)
            log(f"kept {tmp} (logs in {tmp}/logs)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    results["loadavg_end"] = br.loadavg()
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    if results.get("forward"):
        results["forward_medians"] = [
            {"cipher": c, "direction": d, "path": p, **row}
            for (c, d, p), row in forward_medians(results["forward"]).items()
        ]
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    print(render(results))
    log(f"wrote {out_path} ({results['elapsed_s']} s)")
    return status


if __name__ == "__main__":
    sys.exit(main())
