//! A throwaway OpenLDAP server for the directory tests: Debian's `slapd`
//! under a temporary folder, on free 127.0.0.1 ports: `ldap://` (StartTLS
//! offered) and `ldaps://`, with a test CA and server certificate made
//! with rcgen. The database is loaded with `slapadd` from a `slapd.conf`
//! that includes the core, cosine, nis and inetorgperson schemas, a small
//! openssh-lpk schema (`sshPublicKey`) and a small schema with Active
//! Directory's attribute names (`sAMAccountName`, `userAccountControl`,
//! `memberOf`), both written here.
//!
//! Include it with `#[path = "support/slapd.rs"] mod slapd;`. The server
//! is killed and its folder removed when the [`Slapd`] is dropped.
//! Missing binaries fail the test with what to install (scripts/setup
//! installs them).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SUFFIX: &str = "dc=example,dc=com";
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=com";
const ROOT_PW: &str = "rootsecret";
pub const BIND_DN: &str = "cn=gatehouse,ou=services,dc=example,dc=com";
pub const BIND_PW: &str = "bind-secret-1";

const LPK_SCHEMA: &str = "\
attributetype ( 1.3.6.1.4.1.24552.500.1.1.1.13 NAME 'sshPublicKey'
  DESC 'OpenSSH public key'
  EQUALITY octetStringMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 )
objectclass ( 1.3.6.1.4.1.24552.500.1.1.2.0 NAME 'ldapPublicKey' SUP top AUXILIARY
  DESC 'OpenSSH LPK objectclass'
  MAY ( sshPublicKey $ uid ) )
";

/// Active Directory's names on OpenLDAP, for the AD-shaped tests.
const AD_SCHEMA: &str = "\
attributetype ( 1.3.6.1.4.1.55555.1.1 NAME 'sAMAccountName'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.55555.1.2 NAME 'userAccountControl'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.55555.1.3 NAME 'memberOf'
  EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )
objectclass ( 1.3.6.1.4.1.55555.2.1 NAME 'adShapedUser' SUP top AUXILIARY
  MAY ( sAMAccountName $ userAccountControl $ memberOf $ sshPublicKey ) )
";

/// The tree every test starts from: the service account and the three
/// branches. Tests add people and groups with [`person`] and friends.
pub fn base_ldif() -> String {
    format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
         dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n\
         dn: ou=ad,{SUFFIX}\nobjectClass: organizationalUnit\nou: ad\n\n\
         dn: ou=services,{SUFFIX}\nobjectClass: organizationalUnit\nou: services\n\n\
         dn: {BIND_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n\
         cn: gatehouse\nuserPassword: {BIND_PW}\n\n"
    )
}

/// An OpenLDAP person with keys; `disabled` sets `employeeType: disabled`
/// (the tests' `disabled_filter`).
pub fn person(uid: &str, keys: &[&str], disabled: bool) -> String {
    let mut s = format!(
        "dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
         objectClass: ldapPublicKey\ncn: {uid}\nsn: {uid}\nuid: {uid}\nuidNumber: 10000\n\
         gidNumber: 10000\nhomeDirectory: /home/{uid}\n"
    );
    for k in keys {
        s.push_str(&format!("sshPublicKey: {k}\n"));
    }
    if disabled {
        s.push_str("employeeType: disabled\n");
    }
    s.push('\n');
    s
}

/// A groupOfNames with members by uid (under ou=people).
pub fn group_of_names(cn: &str, uids: &[&str]) -> String {
    let mut s = format!("dn: cn={cn},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {cn}\n");
    for u in uids {
        s.push_str(&format!("member: uid={u},ou=people,{SUFFIX}\n"));
    }
    s.push('\n');
    s
}

/// A posixGroup with `memberUid` values.
pub fn posix_group(cn: &str, uids: &[&str]) -> String {
    let mut s = format!(
        "dn: cn={cn},ou=groups,{SUFFIX}\nobjectClass: posixGroup\ncn: {cn}\ngidNumber: 20000\n"
    );
    for u in uids {
        s.push_str(&format!("memberUid: {u}\n"));
    }
    s.push('\n');
    s
}

/// An entry shaped like an Active Directory user under ou=ad: its name in
/// `sAMAccountName` (mixed case), its groups in `memberOf`, disabled by
/// bit 2 of `userAccountControl`.
pub fn ad_user(name: &str, keys: &[&str], member_of: &[&str], disabled: bool) -> String {
    let mut s = format!(
        "dn: cn={name},ou=ad,{SUFFIX}\nobjectClass: organizationalRole\nobjectClass: adShapedUser\n\
         cn: {name}\nsAMAccountName: {name}\nuserAccountControl: {}\n",
        if disabled { 514 } else { 512 }
    );
    for k in keys {
        s.push_str(&format!("sshPublicKey: {k}\n"));
    }
    for g in member_of {
        s.push_str(&format!("memberOf: cn={g},ou=groups,{SUFFIX}\n"));
    }
    s.push('\n');
    s
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn need(program: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    panic!("{program} not found: install slapd and ldap-utils (scripts/setup does)");
}

pub struct Slapd {
    pub dir: PathBuf,
    /// `ldap://` port (StartTLS offered).
    pub port: u16,
    /// `ldaps://` port.
    pub tls_port: u16,
    /// The test CA's certificate (PEM), for `ca_file`.
    pub ca_file: PathBuf,
    conf: PathBuf,
    child: Option<Child>,
}

impl Slapd {
    /// Writes the configuration, certificates and `data` (LDIF after the
    /// base tree), loads them with slapadd and starts slapd.
    pub fn start(data: &str) -> Slapd {
        let dir =
            std::env::temp_dir().join(format!("gh-slapd-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(dir.join("db")).expect("slapd folder");
        let (ca_pem, cert_pem, key_pem) = certificates();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca_pem).expect("write CA");
        std::fs::write(dir.join("server.pem"), cert_pem).expect("write cert");
        std::fs::write(dir.join("server.key"), key_pem).expect("write key");
        std::fs::write(dir.join("openssh-lpk.schema"), LPK_SCHEMA).expect("write schema");
        std::fs::write(dir.join("ad.schema"), AD_SCHEMA).expect("write schema");
        let d = dir.display();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include {d}/openssh-lpk.schema\n\
             include {d}/ad.schema\n\
             pidfile {d}/slapd.pid\n\
             argsfile {d}/slapd.args\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             TLSCACertificateFile {d}/ca.pem\n\
             TLSCertificateFile {d}/server.pem\n\
             TLSCertificateKeyFile {d}/server.key\n\
             sizelimit unlimited\n\
             database mdb\n\
             maxsize 1073741824\n\
             suffix \"{SUFFIX}\"\n\
             rootdn \"{ROOT_DN}\"\n\
             rootpw {ROOT_PW}\n\
             directory {d}/db\n\
             index objectClass eq\n\
             index uid,memberUid eq\n\
             index member eq\n\
             limits dn.exact=\"{BIND_DN}\" size=unlimited size.pr=unlimited size.prtotal=unlimited\n\
             access to attrs=userPassword by anonymous auth by * none\n\
             access to * by users read by * none\n"
        );
        let conf_path = dir.join("slapd.conf");
        std::fs::write(&conf_path, conf).expect("write slapd.conf");
        let ldif = dir.join("data.ldif");
        std::fs::write(&ldif, format!("{}{data}", base_ldif())).expect("write LDIF");
        let out = Command::new(need("slapadd"))
            .arg("-f")
            .arg(&conf_path)
            .arg("-l")
            .arg(&ldif)
            .output()
            .expect("run slapadd");
        assert!(
            out.status.success(),
            "slapadd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut s = Slapd {
            dir,
            port: free_port(),
            tls_port: free_port(),
            ca_file,
            conf: conf_path,
            child: None,
        };
        s.run();
        s
    }

    /// Starts slapd (again), on the same ports.
    pub fn run(&mut self) {
        let child = Command::new(need("slapd"))
            .arg("-d")
            .arg("0")
            .arg("-f")
            .arg(&self.conf)
            .arg("-h")
            .arg(format!(
                "ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/",
                self.port, self.tls_port
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(self.dir.join("slapd.log")).expect("slapd log"),
            ))
            .spawn()
            .expect("start slapd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.tls_port)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("slapd did not start: {}", self.log());
    }

    /// Stops slapd (the data stays for [`Slapd::run`]).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("slapd.log")).unwrap_or_default()
    }

    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.tls_port)
    }

    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `tool` (ldapmodify, ldapadd, ldapdelete) bound as the directory's
    /// administrator over plain LDAP.
    fn as_admin(&self, tool: &str) -> Command {
        let mut c = Command::new(need(tool));
        c.args(["-x", "-H", &self.ldap_url(), "-D", ROOT_DN, "-w", ROOT_PW]);
        c
    }

    /// Applies an LDIF change as the directory's administrator.
    pub fn modify(&self, ldif: &str) {
        let out = run_with_input(&mut self.as_admin("ldapmodify"), ldif);
        assert!(out.0, "ldapmodify failed: {}", out.1);
    }

    /// Adds entries (LDIF without changetype).
    pub fn add(&self, ldif: &str) {
        let out = run_with_input(&mut self.as_admin("ldapadd"), ldif);
        assert!(out.0, "ldapadd failed: {}", out.1);
    }

    pub fn delete(&self, dn: &str) {
        let out = self
            .as_admin("ldapdelete")
            .arg(dn)
            .output()
            .expect("run ldapdelete");
        assert!(
            out.status.success(),
            "ldapdelete failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The `[directory]` table for a bastion reading this server over
    /// ldaps, with the password file written (0600) at `secret`.
    pub fn directory_toml(&self, secret: &Path, sync_every: &str, max_stale: &str) -> String {
        write_secret(secret);
        format!(
            "[directory]\nurl = \"{}\"\nca_file = \"{}\"\nbind_dn = \"{BIND_DN}\"\n\
             bind_password_file = \"{}\"\nusers = \"ou=people,{SUFFIX}\"\n\
             user_filter = \"(objectClass=posixAccount)\"\nname_attribute = \"uid\"\n\
             key_attribute = \"sshPublicKey\"\ngroups = \"ou=groups,{SUFFIX}\"\n\
             group_filter = \"(|(objectClass=groupOfNames)(objectClass=posixGroup))\"\n\
             disabled_filter = \"(employeeType=disabled)\"\nsync_every = \"{sync_every}\"\n\
             max_stale = \"{max_stale}\"\n\n[directory.roles]\napprover = [\"leads\"]\n",
            self.ldaps_url(),
            self.ca_file.display(),
            secret.display()
        )
    }
}

/// The bind password file, mode 0600.
pub fn write_secret(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).expect("secret folder");
    }
    std::fs::write(path, format!("{BIND_PW}\n")).expect("write secret");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod secret");
}

fn run_with_input(cmd: &mut Command, input: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ldap tool");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().expect("ldap tool");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{n:08x}")
}

/// (CA PEM, server certificate PEM, server key PEM) for 127.0.0.1.
fn certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "gatehouse test directory CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA cert");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("server params");
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os("GATEHOUSE_KEEP_TEST_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
