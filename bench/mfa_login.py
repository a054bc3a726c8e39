#!/usr/bin/env python3
"""Gatehouse benchmark: the login latency second factors add (issue 19).

One run, one bastion, one OpenSSH sshd target, all on 127.0.0.1; each
measured login is `ssh USER@SERVER@gatehouse true` with the stock client,
its wall time from start to exit:

  key         a user who needs no second factor ([auth] mfa = "optional",
              not enrolled): the key alone
  cached      a user who must give a factor and whose key and source hold
              a cached approval: no prompt (SSH_ASKPASS fails if called)
  totp        a code asked and typed: partial success after the key, then
              keyboard-interactive, the code from `oathtool` through
              SSH_ASKPASS (SSH_ASKPASS_REQUIRE=force), to a server with
              mfa = "every-session" (so never cached)

A code works once and one step of drift is accepted, so each user gives
one uncached login per 30 s: the `totp` runs use one freshly enrolled user
each (enrolled through `mfa enroll` without a terminal, as the contract
describes). Runs are interleaved path by path. Prints a table of medians
and p90, writes JSON (bench/results/mfa_login.json or --out), stops all it
started. Needs root (sshd), oathtool, and a gatehouse binary (built with
`cargo build --release` unless --gatehouse or --no-build).
"""

import argparse
import datetime
import importlib.machinery
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
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
PATHS = ["key", "cached", "totp"]
LABEL = {
    "key": "key only (no factor needed)",
    "cached": "key + cached TOTP approval",
    "totp": "key + TOTP code typed",
}


def write(path, text, mode=None):
    with open(path, "w") as f:
        f.write(text)
    if mode is not None:
        os.chmod(path, mode)


class Rig:
    def __init__(self, tmp, procs, gatehouse_bin, users):
        self.tmp = tmp
        self.procs = procs
        self.bin = gatehouse_bin
        self.users = users
        self.p = lambda *parts: os.path.join(tmp, *parts)

    def setup(self):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        p = self.p
        for d in ("keys", "gh", "gh/data", "gh/policies", "logs"):
            os.makedirs(p(d), exist_ok=True)
        k = br.make_keys(p, "gh/data")
        self.client_key = p("keys/client")
        self.target_port, self.gh_port = br.free_ports(2)
        cfg = p("sshd_target.conf")
        rig = br.Rig.__new__(br.Rig)
        rig.p = p
        rig.procs = self.procs
        br.Rig.write_sshd_config(
            rig, cfg, self.target_port, p("keys/target_host"),
            p("keys/target_authorized_keys"), "AllowTcpForwarding no\n",
        )
        target = br.Rig.start_sshd(rig, "sshd-target", cfg)
        # Staff keys are personal: one each.
        self.key_of = {u: p("keys", f"user-{u}") for u in ["plain"] + self.users}
        users = "".join(
            f'[[user]]\nname = "{u}"\nkeys = ["{br.keygen(self.key_of[u], u)}"]\n'
            'groups = ["bench"]\n'
            + ('mfa = "required"\n' if u != "plain" else "")
            for u in ["plain"] + self.users
        )
        servers = "".join(
            f'''[[server]]
name = "{name}"
address = "127.0.0.1:{self.target_port}"
host_key = "{k["target_fp"]}"
mode = "ssh-forwarding"
accounts = ["root"]
allow = ["group:bench"]
record = "never"
{extra}
'''
            for name, extra in (("web", ""), ("stepup", 'mfa = "every-session"'))
        )
        write(p("gh/policies/bench.toml"), users + servers)
        write(
            p("gh/gatehouse.toml"),
            f'''[server]
listen = "127.0.0.1:{self.gh_port}"

[auth]
mfa = "optional"
mfa_cache = "8h"

[limits]
auth_per_minute_per_source = 100000
max_startups = 1000
''',
        )
        br.wait_banner(self.target_port, target, "sshd-target")
        self.gh_proc = self.procs.start_daemon(
            "gatehouse",
            [self.bin, "--config", p("gh/gatehouse.toml"), "serve"],
            p("logs/gatehouse.log"),
        )
        br.wait_banner(self.gh_port, self.gh_proc, "gatehouse")
        write(
            p("ssh_config"),
            f"""Host *
  HostName 127.0.0.1
  Port {self.gh_port}
  IdentitiesOnly yes
  IdentityAgent none
  BatchMode yes
  UserKnownHostsFile /dev/null
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking no
  KexAlgorithms {br.KEX}
  Ciphers chacha20-poly1305@openssh.com
  ControlMaster no
  ControlPath none
  RequestTTY no
  LogLevel ERROR
  ConnectTimeout 20
""",
        )
        write(p("askpass-forbidden"), f"#!/bin/sh\ntouch {p('asked')}\nexit 1\n", 0o700)

    def ssh(self, login, command, askpass=None, stdin=None):
        staff = login.split("@")[0]
        argv = ["ssh", "-F", self.p("ssh_config"), "-i", self.key_of[staff]]
        env = dict(os.environ)
        env.pop("SSH_AUTH_SOCK", None)
        if askpass:
            argv += ["-o", "BatchMode=no", "-o", "NumberOfPasswordPrompts=1"]
            env.update(SSH_ASKPASS=askpass, SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
        argv += [f"{login}@bench-gatehouse"] + command
        return subprocess.Popen(
            argv, env=env, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def enroll(self, user):
        """`mfa enroll` without a terminal: the URI on the first line, the
        code on stdin. Returns the base32 secret."""
        proc = self.ssh(user, ["mfa", "enroll"], stdin=True)
        first = proc.stdout.readline().strip()
        if not first.startswith("otpauth://"):
            proc.kill()
            raise BenchError(f"mfa enroll for {user}: first line {first!r}")
        secret = first.split("secret=")[1].split("&")[0]
        code = subprocess.run(["oathtool", "--totp", "-b", secret], check=True,
                              capture_output=True, text=True).stdout.strip()
        out, err = proc.communicate(code + "\n", timeout=60)
        if proc.returncode != 0 or "Recovery codes" not in out:
            raise BenchError(f"mfa enroll for {user} failed: {out}\n{err}")
        # Answers with the next step's code: the enrollment used this one.
        script = self.p(f"askpass-{user}")
        write(script, "#!/bin/sh\nexec oathtool --totp -b "
              f"{secret} --now @$(( $(date +%s) + 30 ))\n", 0o700)
        return script

    def timed(self, login, askpass=None):
        t0 = time.monotonic()
        proc = self.ssh(login, ["true"], askpass=askpass)
        out, err = proc.communicate(timeout=60)
        ms = (time.monotonic() - t0) * 1000
        if proc.returncode != 0:
            raise BenchError(f"ssh {login} failed ({proc.returncode}): {err.strip()}")
        return ms


def p90(values):
    return br.p90(values)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15, help="logins per path (default 15)")
    ap.add_argument("--out", help="JSON output (default bench/results/mfa_login.json)")
    ap.add_argument("--gatehouse", help="use this gatehouse binary instead of building")
    ap.add_argument("--no-build", action="store_true", help="skip cargo build --release")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    if os.geteuid() != 0:
        ap.error("run as root: the OpenSSH sshd target needs it")
    if not br.shutil.which("oathtool"):
        ap.error("oathtool is missing (apt-get install oathtool; scripts/setup does)")
    out_path = args.out or os.path.join(br.REPO, "bench", "results", "mfa_login.json")
    gatehouse_bin = br.build(argparse.Namespace(gatehouse=args.gatehouse, no_build=args.no_build))
    tmp = tempfile.mkdtemp(prefix="gatehouse-mfa-bench-")
    procs = br.Procs()

    def on_term(*_):
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, on_term)
    # u0 holds the cached approval; u1.. give one typed code each.
    users = [f"u{i}" for i in range(args.runs + 1)]
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": br.machine_info(),
        "runs": args.runs,
        "ms": {p: [] for p in PATHS},
    }
    status = 0
    try:
        private_bin = os.path.join(tmp, "gatehouse")
        br.shutil.copy2(gatehouse_bin, private_bin)
        rig = Rig(tmp, procs, private_bin, users)
        log(f"setting up in {tmp}")
        rig.setup()
        log(f"enrolling {len(users)} users")
        askpass = {u: rig.enroll(u) for u in users}
        # One cached approval, for the `cached` path (u0's first login).
        rig.timed("u0@web", askpass["u0"])
        forbidden = rig.p("askpass-forbidden")
        # Warm-up of the plain path.
        rig.timed("plain@web")
        for u in users[1:]:
            results["ms"]["key"].append(rig.timed("plain@web"))
            results["ms"]["cached"].append(rig.timed("u0@web", forbidden))
            # Each user's own next code, once, on the every-session server.
            results["ms"]["totp"].append(rig.timed(f"{u}@stepup", askpass[u]))
        if os.path.exists(rig.p("asked")):
            raise BenchError("a cached login asked for a code")
        results["loadavg_end"] = br.loadavg()
    except (BenchError, subprocess.SubprocessError, KeyboardInterrupt) as e:
        results["error"] = f"{type(e).__name__}: {e}"
        status = 1
    finally:
        procs.stop_all()
        if not args.keep:
            br.shutil.rmtree(tmp, ignore_errors=True)
    summary = {}
    for p in PATHS:
        v = results["ms"][p]
        if v:
            summary[p] = {"median_ms": round(statistics.median(v), 1), "p90_ms": round(p90(v), 1)}
    results["summary"] = summary
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(results, f, indent=2)
    key = summary.get("key", {}).get("median_ms")
    print(f"Login latency, `ssh USER@SERVER@gatehouse true`, {args.runs} runs per path")
    print()
    print("| path                        | median ms | p90 ms | added to key only |")
    print("|-----------------------------|-----------|--------|-------------------|")
    for p in PATHS:
        s = summary.get(p)
        if not s:
            continue
        added = "-" if p == "key" or key is None else f"{s['median_ms'] - key:+.1f} ms"
        print(f"| {LABEL[p]:<27} | {s['median_ms']:>9} | {s['p90_ms']:>6} | {added:>17} |")
    if "error" in results:
        print(f"error: {results['error']}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
