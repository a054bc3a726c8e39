#!/usr/bin/env bash
# Directory sync at scale (issue 20): a throwaway slapd holding USERS staff
# (default 10,000) in NGROUPS groupOfNames (default 500, every user in one,
# plus one group of everyone), read by `gatehouse directory sync --json`
# over ldaps with paged results. Prints the wall time and peak memory
# (GNU time's maximum resident set) of the first sync (everyone a joiner),
# of a second one (no change) and of a third after 100 leavers.
#
# Usage: bench/directory_sync.sh [GATEHOUSE_BINARY] (default
# target/release/gatehouse). Needs slapd, ldap-utils, openssl, ssh-keygen,
# python3 and /usr/bin/time (scripts/setup installs them). Runs as root or
# any user; everything lives in a temporary folder removed at the end.
set -euo pipefail
BIN=${1:-target/release/gatehouse}
BIN=$(readlink -f "$BIN")
USERS=${USERS:-10000}
NGROUPS=${NGROUPS:-500}
work=$(mktemp -d)
trap 'kill "$(cat "$work/slapd.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
mkdir db keys
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); tls_port=$(free_port)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=bench CA" -keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=127.0.0.1" \
  -keyout server.key -out server.csr 2>/dev/null
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -extfile <(printf 'subjectAltName=IP:127.0.0.1\n') -out server.pem 2>/dev/null

cat > lpk.schema <<'S'
attributetype ( 1.3.6.1.4.1.24552.500.1.1.1.13 NAME 'sshPublicKey'
  EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 )
objectclass ( 1.3.6.1.4.1.24552.500.1.1.2.0 NAME 'ldapPublicKey' SUP top AUXILIARY
  MAY ( sshPublicKey $ uid ) )
S
cat > slapd.conf <<C
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
include $work/lpk.schema
pidfile $work/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile $work/ca.pem
TLSCertificateFile $work/server.pem
TLSCertificateKeyFile $work/server.key
sizelimit unlimited
database mdb
maxsize 4294967296
suffix "dc=example,dc=com"
rootdn "cn=admin,dc=example,dc=com"
rootpw rootsecret
directory $work/db
index objectClass,uid,member eq
limits dn.exact="cn=gatehouse,ou=services,dc=example,dc=com" size=unlimited size.pr=unlimited size.prtotal=unlimited
access to attrs=userPassword by anonymous auth by * none
access to * by users read by * none
C

# A pool of 50 real keys, reused: key parsing is measured, keygen is not.
for i in $(seq 1 50); do ssh-keygen -q -t ed25519 -N '' -C "k$i" -f "keys/k$i"; done
python3 - "$USERS" "$NGROUPS" > data.ldif <<'P'
import sys, glob
users, groups = int(sys.argv[1]), int(sys.argv[2])
keys = [open(f).read().strip() for f in sorted(glob.glob("keys/*.pub"))]
S = "dc=example,dc=com"
print(f"dn: {S}\nobjectClass: dcObject\nobjectClass: organization\no: x\ndc: example\n")
for ou in ("people", "groups", "services"):
    print(f"dn: ou={ou},{S}\nobjectClass: organizationalUnit\nou: {ou}\n")
print(f"dn: cn=gatehouse,ou=services,{S}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: gatehouse\nuserPassword: bench-secret\n")
for u in range(users):
    print(f"dn: uid=u{u},ou=people,{S}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\nobjectClass: ldapPublicKey\n"
          f"cn: u{u}\nsn: u{u}\nuid: u{u}\nuidNumber: {10000+u}\ngidNumber: 10000\nhomeDirectory: /home/u{u}\nsshPublicKey: {keys[u % len(keys)]}\n")
for g in range(groups):
    members = "".join(f"member: uid=u{u},ou=people,{S}\n" for u in range(g, users, groups))
    print(f"dn: cn=g{g},ou=groups,{S}\nobjectClass: groupOfNames\ncn: g{g}\n{members}")
members = "".join(f"member: uid=u{u},ou=people,{S}\n" for u in range(users))
print(f"dn: cn=everyone,ou=groups,{S}\nobjectClass: groupOfNames\ncn: everyone\n{members}")
P
slapadd -q -f slapd.conf -l data.ldif
slapd -f slapd.conf -h "ldap://127.0.0.1:$port/ ldaps://127.0.0.1:$tls_port/"
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$tls_port) 2>/dev/null && break; sleep 0.1; done

printf 'bench-secret\n' > directory.secret; chmod 600 directory.secret
mkdir -p policies data
cat > gatehouse.toml <<T
[server]
database = "sqlite://$work/data/gatehouse.db"
[directory]
url = "ldaps://127.0.0.1:$tls_port"
ca_file = "$work/ca.pem"
bind_dn = "cn=gatehouse,ou=services,dc=example,dc=com"
bind_password_file = "$work/directory.secret"
users = "ou=people,dc=example,dc=com"
user_filter = "(objectClass=posixAccount)"
groups = "ou=groups,dc=example,dc=com"
group_filter = "(objectClass=groupOfNames)"
T

run() {
  local label=$1
  /usr/bin/time -f "%e %M" -o t.txt "$BIN" --config gatehouse.toml directory sync --json > out.json
  read -r secs kb < t.txt
  python3 - "$label" "$secs" "$kb" <<'R'
import json, sys
r = json.load(open("out.json"))
d = r["diff"]
print(f"{sys.argv[1]:<22} {float(sys.argv[2]):>7.2f} s {int(sys.argv[3])/1024:>8.1f} MiB peak   "
      f"users {r['users']}, groups {r['groups']}, +{len(d['added'])} ~{len(d['changed'])} -{len(d['removed'])}")
R
}
echo "directory sync: $USERS users, $NGROUPS groups (+1 of everyone), $("$BIN" --version 2>/dev/null || echo gatehouse)"
run "first (all joiners)"
run "second (no change)"
for u in $(seq 0 99); do echo "uid=u$u,ou=people,dc=example,dc=com"; done > gone.txt
ldapdelete -x -H "ldap://127.0.0.1:$port" -D cn=admin,dc=example,dc=com -w rootsecret -f gone.txt
run "third (100 leavers)"
