#!/usr/bin/env python3
"""Gatehouse benchmark: the login latency of a directory user against a
policy user (issue 20).

One run, all on 127.0.0.1: an OpenSSH sshd target, a throwaway slapd over
ldaps holding USERS staff (default 10,000, keys from a pool of 50) in 500
groupOfNames plus the measured directory user `dirbench` (its own key, in
group `bench`), and two bastions on the same binary and target:

  policy      `plain`, a `[[user]]` in the policy file, through the bastion
              with `[directory]` (its served policy holds the 10,000
              directory users too)
  directory   `dirbench`, from the directory, through the same bastion
  no-dir      `plain` through a second bastion without `[directory]`: the
              baseline of a policy with one user

Each measured login is `ssh -o BatchMode=yes USER+root@web@bastion true`
with the stock client, its wall time from start to exit; runs are
interleaved path by path after one warm-up each. Prints a table of median,
p90 and p95, writes JSON (bench/results/directory_login.json or --out),
stops all it started. Needs root (sshd), slapd, ldap-utils, openssl and a
gatehouse binary (built with `cargo build --release` unless --gatehouse or
--no-build).
"""

import argparse
import datetime
import importlib.machinery
import importlib.util
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SUFFIX = "dc=example,dc=com"
BIND_DN = f"cn=gatehouse,ou=services,{SUFFIX}"


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
PATHS = ["policy", "directory", "no-dir"]
LABEL = {
    "policy": "policy user, bastion with directory",
    "directory": "directory user, same bastion",
    "no-dir": "policy user, bastion without directory",
}


def write(path, text, mode=None):
    with open(path, "w") as f:
        f.write(text)
    if mode is not None:
        os.chmod(path, mode)


def p95(values):
    s = sorted(values)
    return s[max(0, math.ceil(0.95 * len(s)) - 1)]


class Rig:
    def __init__(self, tmp, procs, gatehouse_bin, users, groups):
        self.tmp = tmp
        self.procs = procs
        self.bin = gatehouse_bin
        self.users = users
        self.groups = groups
        self.p = lambda *parts: os.path.join(tmp, *parts)

    def setup(self):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        p = self.p
        for d in ("keys", "pool", "gh/data", "gh/policies", "gh2/data", "gh2/policies",
                  "logs", "ldap/db"):
            os.makedirs(p(d), exist_ok=True)
        k = br.make_keys(p, "gh/data")
        # The second bastion: the same identity (the target trusts it) and
        # host key, its own database.
        for f in ("identity_ed25519_key", "ssh_host_ed25519_key"):
            for ext in ("", ".pub"):
                br.shutil.copy2(p("gh/data", f + ext), p("gh2/data", f + ext))
        self.target_port, self.gh_port, self.gh2_port, self.ldap_port, self.ldaps_port = \
            br.free_ports(5)
        cfg = p("sshd_target.conf")
        rig = br.Rig.__new__(br.Rig)
        rig.p = p
        rig.procs = self.procs
        br.Rig.write_sshd_config(
            rig, cfg, self.target_port, p("keys/target_host"),
            p("keys/target_authorized_keys"), "AllowTcpForwarding no\n",
        )
        target = br.Rig.start_sshd(rig, "sshd-target", cfg)
        self.key_of = {
            "plain": p("keys/user-plain"),
            "dirbench": p("keys/user-dirbench"),
        }
        plain_pub = br.keygen(self.key_of["plain"], "plain")
        dir_pub = br.keygen(self.key_of["dirbench"], "dirbench")
        self.start_slapd(dir_pub)
        policy = f'''[[user]]
name = "plain"
keys = ["{plain_pub}"]
groups = ["bench"]

[[server]]
name = "web"
address = "127.0.0.1:{self.target_port}"
host_key = "{k["target_fp"]}"
mode = "ssh-forwarding"
accounts = ["root"]
allow = ["group:bench"]
record = "never"
'''
        write(p("gh/policies/bench.toml"), policy)
        write(p("gh2/policies/bench.toml"), policy)
        limits = """
[limits]
auth_per_minute_per_source = 100000
max_startups = 1000
"""
        write(p("directory.secret"), "bench-secret\n", 0o600)
        write(
            p("gh/gatehouse.toml"),
            f'''[server]
listen = "127.0.0.1:{self.gh_port}"
{limits}
[directory]
url = "ldaps://127.0.0.1:{self.ldaps_port}"
ca_file = "{p("ldap/ca.pem")}"
bind_dn = "{BIND_DN}"
bind_password_file = "{p("directory.secret")}"
users = "ou=people,{SUFFIX}"
user_filter = "(objectClass=posixAccount)"
name_attribute = "uid"
key_attribute = "sshPublicKey"
groups = "ou=groups,{SUFFIX}"
group_filter = "(objectClass=groupOfNames)"
sync_every = "60s"
max_stale = "15m"
''',
        )
        write(p("gh2/gatehouse.toml"), f'[server]\nlisten = "127.0.0.1:{self.gh2_port}"\n{limits}')
        br.wait_banner(self.target_port, target, "sshd-target")
        self.gh_proc = self.procs.start_daemon(
            "gatehouse", [self.bin, "--config", p("gh/gatehouse.toml"), "serve"],
            p("logs/gatehouse.log"),
        )
        self.gh2_proc = self.procs.start_daemon(
            "gatehouse-nodir", [self.bin, "--config", p("gh2/gatehouse.toml"), "serve"],
            p("logs/gatehouse-nodir.log"),
        )
        br.wait_banner(self.gh_port, self.gh_proc, "gatehouse")
        br.wait_banner(self.gh2_port, self.gh2_proc, "gatehouse (no directory)")
        for name, port in (("gh", self.gh_port), ("gh2", self.gh2_port)):
            write(
                p(f"ssh_config_{name}"),
                f"""Host *
  HostName 127.0.0.1
  Port {port}
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

    def start_slapd(self, dir_pub):
        p = self.p
        br.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=bench CA",
                "-keyout", p("ldap/ca.key"), "-out", p("ldap/ca.pem"),
                "-addext", "basicConstraints=critical,CA:TRUE"], capture_output=True)
        br.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", p("ldap/server.key"),
                "-out", p("ldap/server.csr")], capture_output=True)
        write(p("ldap/san.ext"), "subjectAltName=IP:127.0.0.1\n")
        br.run(["openssl", "x509", "-req", "-in", p("ldap/server.csr"), "-CA", p("ldap/ca.pem"),
                "-CAkey", p("ldap/ca.key"), "-CAcreateserial", "-days", "2",
                "-extfile", p("ldap/san.ext"), "-out", p("ldap/server.pem")],
               capture_output=True)
        write(p("ldap/lpk.schema"), """attributetype ( 1.3.6.1.4.1.24552.500.1.1.1.13 NAME 'sshPublicKey'
  EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 )
objectclass ( 1.3.6.1.4.1.24552.500.1.1.2.0 NAME 'ldapPublicKey' SUP top AUXILIARY
  MAY ( sshPublicKey $ uid ) )
""")
        d = p("ldap")
        write(p("ldap/slapd.conf"), f"""include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
include {d}/lpk.schema
pidfile {d}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile {d}/ca.pem
TLSCertificateFile {d}/server.pem
TLSCertificateKeyFile {d}/server.key
sizelimit unlimited
database mdb
maxsize 4294967296
suffix "{SUFFIX}"
rootdn "cn=admin,{SUFFIX}"
rootpw rootsecret
directory {d}/db
index objectClass,uid,member eq
limits dn.exact="{BIND_DN}" size=unlimited size.pr=unlimited size.prtotal=unlimited
access to attrs=userPassword by anonymous auth by * none
access to * by users read by * none
""")
        # A pool of 50 real keys, reused: key parsing is in the sync, not
        # in the login being measured.
        pool = [br.keygen(p("pool", f"k{i}"), f"k{i}") for i in range(50)]
        out = []
        out.append(f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: x\ndc: example\n")
        for ou in ("people", "groups", "services"):
            out.append(f"dn: ou={ou},{SUFFIX}\nobjectClass: organizationalUnit\nou: {ou}\n")
        out.append(f"dn: {BIND_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
                   "cn: gatehouse\nuserPassword: bench-secret\n")

        def person(uid, n, key):
            return (f"dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\n"
                    "objectClass: posixAccount\nobjectClass: ldapPublicKey\n"
                    f"cn: {uid}\nsn: {uid}\nuid: {uid}\nuidNumber: {n}\ngidNumber: 10000\n"
                    f"homeDirectory: /home/{uid}\nsshPublicKey: {key}\n")

        for u in range(self.users):
            out.append(person(f"u{u}", 10000 + u, pool[u % len(pool)]))
        out.append(person("dirbench", 9999, dir_pub))
        for g in range(self.groups):
            members = "".join(f"member: uid=u{u},ou=people,{SUFFIX}\n"
                              for u in range(g, self.users, self.groups))
            out.append(f"dn: cn=g{g},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: g{g}\n{members}")
        out.append(f"dn: cn=bench,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: bench\n"
                   f"member: uid=dirbench,ou=people,{SUFFIX}\n")
        write(p("ldap/data.ldif"), "\n".join(out))
        br.run(["slapadd", "-q", "-f", p("ldap/slapd.conf"), "-l", p("ldap/data.ldif")])
        self.slapd = self.procs.start_daemon(
            "slapd",
            ["slapd", "-d", "0", "-f", p("ldap/slapd.conf"), "-h",
             f"ldap://127.0.0.1:{self.ldap_port}/ ldaps://127.0.0.1:{self.ldaps_port}/"],
            p("logs/slapd.log"),
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with br.socket.create_connection(("127.0.0.1", self.ldaps_port), timeout=2):
                    return
            except OSError:
                time.sleep(0.1)
        raise BenchError("slapd did not start")

    def timed(self, path):
        staff = "dirbench" if path == "directory" else "plain"
        cfg = self.p("ssh_config_gh2" if path == "no-dir" else "ssh_config_gh")
        argv = ["ssh", "-F", cfg, "-i", self.key_of[staff], "-o", "BatchMode=yes",
                f"{staff}+root@web@bastion", "true"]
        env = dict(os.environ)
        env.pop("SSH_AUTH_SOCK", None)
        t0 = time.monotonic()
        proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60)
        ms = (time.monotonic() - t0) * 1000
        if proc.returncode != 0:
            raise BenchError(f"ssh {staff} ({path}) failed ({proc.returncode}): {proc.stderr.strip()}")
        return ms

    def wait_first_sync(self, timeout):
        """Until the directory user logs in (the copy is stored and served),
        then until the sync has ended: its 10,000 `user.added` events are
        written after the copy is stored, and must not run under the
        measurement. Returns both times in seconds."""
        t0 = time.monotonic()
        served = None
        while time.monotonic() - t0 < timeout:
            if self.gh_proc.poll() is not None:
                raise BenchError("gatehouse exited while waiting for the first sync")
            if served is None:
                try:
                    self.timed("directory")
                    served = time.monotonic() - t0
                except (BenchError, subprocess.TimeoutExpired):
                    pass
            if served is not None and self.sync_lines():
                return served, time.monotonic() - t0
            time.sleep(0.5)
        raise BenchError(f"the first sync did not end within {timeout}s")

    def sync_lines(self):
        try:
            with open(self.p("logs/gatehouse.log")) as f:
                return [re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
                        for line in f if "directory synced" in line]
        except OSError:
            return []


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=50, help="logins per path (default 50)")
    ap.add_argument("--users", type=int, default=10000, help="directory users (default 10,000)")
    ap.add_argument("--groups", type=int, default=500, help="directory groups (default 500)")
    ap.add_argument("--out", help="JSON output (default bench/results/directory_login.json)")
    ap.add_argument("--gatehouse", help="use this gatehouse binary instead of building")
    ap.add_argument("--no-build", action="store_true", help="skip cargo build --release")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    if os.geteuid() != 0:
        ap.error("run as root: the OpenSSH sshd target needs it")
    for tool in ("slapd", "slapadd", "openssl"):
        if not br.shutil.which(tool):
            ap.error(f"{tool} is missing (scripts/setup installs slapd, ldap-utils, openssl)")
    out_path = args.out or os.path.join(br.REPO, "bench", "results", "directory_login.json")
    gatehouse_bin = br.build(argparse.Namespace(gatehouse=args.gatehouse, no_build=args.no_build))
    tmp = tempfile.mkdtemp(prefix="gatehouse-dirlogin-bench-")
    procs = br.Procs()

    def on_term(*_):
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, on_term)
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": br.machine_info(),
        "gatehouse_binary": gatehouse_bin,
        "runs": args.runs,
        "directory_users": args.users + 1,
        "directory_groups": args.groups + 1,
        "ms": {p: [] for p in PATHS},
    }
    status = 0
    try:
        private_bin = os.path.join(tmp, "gatehouse")
        br.shutil.copy2(gatehouse_bin, private_bin)
        rig = Rig(tmp, procs, private_bin, args.users, args.groups)
        log(f"setting up in {tmp} ({args.users} directory users)")
        rig.setup()
        log("waiting for the first sync (every user a joiner, one event each)")
        served, ended = rig.wait_first_sync(1800)
        results["first_sync_served_after_s"] = round(served, 1)
        results["first_sync_ended_after_s"] = round(ended, 1)
        results["loadavg_measure_start"] = br.loadavg()
        for path in PATHS:
            rig.timed(path)
        log(f"measuring {args.runs} logins per path")
        for _ in range(args.runs):
            for path in PATHS:
                results["ms"][path].append(rig.timed(path))
        results["loadavg_end"] = br.loadavg()
        results["rss_kib"] = {
            "with_directory": br.status_field(rig.gh_proc.pid, "VmRSS"),
            "without_directory": br.status_field(rig.gh2_proc.pid, "VmRSS"),
        }
        results["sync_log"] = rig.sync_lines()
    except (BenchError, subprocess.SubprocessError, KeyboardInterrupt, OSError) as e:
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
            summary[p] = {
                "median_ms": round(statistics.median(v), 1),
                "p90_ms": round(br.p90(v), 1),
                "p95_ms": round(p95(v), 1),
                "min_ms": round(min(v), 1),
            }
    results["summary"] = summary
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(results, f, indent=2)
    base = summary.get("policy", {}).get("median_ms")
    print(f"Login latency, `ssh USER+root@web@bastion true`, {args.runs} runs per path, "
          f"{args.users + 1} directory users")
    print()
    print("| path                                   | median ms | p90 ms | p95 ms | vs policy user |")
    print("|----------------------------------------|-----------|--------|--------|----------------|")
    for p in PATHS:
        s = summary.get(p)
        if not s:
            continue
        vs = "-" if p == "policy" or base is None else f"{s['median_ms'] - base:+.1f} ms"
        print(f"| {LABEL[p]:<38} | {s['median_ms']:>9} | {s['p90_ms']:>6} | {s['p95_ms']:>6} | {vs:>14} |")
    if "error" in results:
        print(f"error: {results['error']}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
