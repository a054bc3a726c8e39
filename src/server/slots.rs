//! Startup slots: the unauthenticated connections held at once
//! (`max_startups`), and which one gives way when they are all taken.
//!
//! A newcomer that finds every slot taken may evict a connection that has
//! had a fair chance (older than [`EVICT_AFTER`]):
//!
//! 1. per source first: the candidate comes from the source holding the
//!    most slots, so a flood evicts its own connections before anyone
//!    else's;
//! 2. a connection that sent a valid SSH banner and completed its key
//!    exchange (a real client, perhaps waiting for a passphrase or a
//!    hardware key touch) is never evicted for a newcomer from another
//!    source, unless its own source holds more than half the slots (it is
//!    then the flood);
//! 3. within a source, connections that have not completed a key exchange
//!    go first, then the oldest.
//!
//! With no candidate the newcomer is refused.
//!
//! Layer: the bottom of `server/`; imports nothing of `server/`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// An unauthenticated connection younger than this is never evicted: a
/// legitimate client completes its key exchange well within it.
pub const EVICT_AFTER: Duration = Duration::from_secs(1);

struct Pending {
    source: IpAddr,
    since: Instant,
    /// Banner and key exchange done (see `server::KexWatch`).
    established: Arc<AtomicBool>,
    evict: CancellationToken,
}

/// One registered unauthenticated connection.
pub struct Slot {
    pub seq: u64,
    /// Fires when the connection is evicted.
    pub evicted: CancellationToken,
    /// Set by the connection once its key exchange completed.
    pub established: Arc<AtomicBool>,
}

pub struct Startups {
    /// One permit per unauthenticated connection.
    pub permits: Arc<Semaphore>,
    max: usize,
    pending: Mutex<BTreeMap<u64, Pending>>,
    seq: AtomicU64,
}

impl Startups {
    pub fn new(max_startups: usize) -> Startups {
        Startups {
            permits: Arc::new(Semaphore::new(max_startups)),
            max: max_startups,
            pending: Mutex::new(BTreeMap::new()),
            seq: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Pending>> {
        // Every mutation is one insert or remove: a poisoned map is intact.
        match self.pending.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Registers an unauthenticated connection from `source`.
    pub fn add(&self, source: IpAddr) -> Slot {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let evicted = CancellationToken::new();
        let established = Arc::new(AtomicBool::new(false));
        self.lock().insert(
            seq,
            Pending {
                source,
                since: Instant::now(),
                established: established.clone(),
                evict: evicted.clone(),
            },
        );
        Slot {
            seq,
            evicted,
            established,
        }
    }

    /// The connection authenticated or ended.
    pub fn done(&self, seq: u64) {
        self.lock().remove(&seq);
    }

    /// Evicts one connection in favour of a newcomer from `newcomer`, by
    /// the rules in the module header; returns the evicted one's source.
    pub fn evict_for(&self, newcomer: IpAddr) -> Option<IpAddr> {
        let mut m = self.lock();
        let mut per_source: HashMap<IpAddr, usize> = HashMap::new();
        for p in m.values() {
            *per_source.entry(p.source).or_default() += 1;
        }
        let half = self.max / 2;
        let held = |s: &IpAddr| per_source.get(s).copied().unwrap_or(0);
        let victim = m
            .iter()
            .filter(|(_, p)| p.since.elapsed() >= EVICT_AFTER)
            .filter(|(_, p)| {
                !p.established.load(Ordering::Relaxed)
                    || p.source == newcomer
                    || held(&p.source) > half
            })
            // Most slots first, then not established, then oldest.
            .max_by_key(|(_, p)| {
                (
                    held(&p.source),
                    !p.established.load(Ordering::Relaxed),
                    std::cmp::Reverse(p.since),
                )
            })
            .map(|(k, _)| *k)?;
        let p = m.remove(&victim)?;
        p.evict.cancel();
        Some(p.source)
    }
}

/// Watches the first bytes a client sends for a valid SSH banner and the
/// end of its first key exchange: the client's NEWKEYS, the last packet it
/// sends in the clear, which it sends only after verifying the bastion's
/// side of the exchange. Stops at that point, or at the first thing that
/// is not SSH (russh refuses such a peer anyway).
pub struct KexWatch {
    established: Arc<AtomicBool>,
    state: Watch,
}

enum Watch {
    /// Lines before and including the banner.
    Banner {
        line: Vec<u8>,
        lines: u8,
    },
    /// The first bytes of a packet: length (4), padding length (1), type (1).
    Header {
        got: [u8; 6],
        n: usize,
    },
    /// The rest of a packet.
    Skip(usize),
    Done,
}

/// SSH_MSG_NEWKEYS.
const NEWKEYS: u8 = 21;
/// Longest cleartext packet a key exchange needs (post-quantum KEX_INIT
/// replies are the biggest, a few KiB); anything longer is not SSH.
const MAX_CLEAR_PACKET: usize = 64 * 1024;

impl KexWatch {
    pub fn new(established: Arc<AtomicBool>) -> KexWatch {
        KexWatch {
            established,
            state: Watch::Banner {
                line: Vec::new(),
                lines: 0,
            },
        }
    }

    pub fn watching(&self) -> bool {
        !matches!(self.state, Watch::Done)
    }

    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.state {
                Watch::Done => return,
                Watch::Banner { line, lines } => {
                    let Some((&b, rest)) = bytes.split_first() else {
                        return;
                    };
                    bytes = rest;
                    if b != b'\n' {
                        line.push(b);
                        if line.len() > 255 {
                            self.state = Watch::Done;
                        }
                        continue;
                    }
                    let banner = line.starts_with(b"SSH-2.0-") || line.starts_with(b"SSH-1.99-");
                    *lines += 1;
                    if banner {
                        self.state = Watch::Header { got: [0; 6], n: 0 };
                    } else if *lines >= 8 {
                        self.state = Watch::Done;
                    } else {
                        line.clear();
                    }
                }
                Watch::Header { got, n } => {
                    let take = (got.len() - *n).min(bytes.len());
                    let (head, rest) = bytes.split_at(take);
                    if let Some(dst) = got.get_mut(*n..*n + take) {
                        dst.copy_from_slice(head);
                    }
                    *n += take;
                    bytes = rest;
                    if *n < got.len() {
                        return;
                    }
                    let len = u32::from_be_bytes([got[0], got[1], got[2], got[3]]) as usize;
                    if !(2..=MAX_CLEAR_PACKET).contains(&len) {
                        self.state = Watch::Done;
                    } else if got[5] == NEWKEYS {
                        self.established.store(true, Ordering::Relaxed);
                        self.state = Watch::Done;
                    } else {
                        // The padding length and type bytes are part of `len`.
                        self.state = Watch::Skip(len - 2);
                    }
                }
                Watch::Skip(left) => {
                    let take = (*left).min(bytes.len());
                    bytes = bytes.get(take..).unwrap_or_default();
                    *left -= take;
                    if *left == 0 {
                        self.state = Watch::Header { got: [0; 6], n: 0 };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    /// Registers a connection that is already old enough to be evicted.
    fn old(s: &Startups, source: &str, established: bool) -> Slot {
        let slot = s.add(ip(source));
        if let Some(p) = s.lock().get_mut(&slot.seq) {
            p.since = Instant::now() - EVICT_AFTER * 2;
        }
        slot.established.store(established, Ordering::Relaxed);
        slot
    }

    #[test]
    fn the_flooding_source_goes_first() {
        let s = Startups::new(8);
        let real = old(&s, "127.0.0.1", false);
        let flood: Vec<Slot> = (0..7).map(|_| old(&s, "127.0.0.2", false)).collect();
        for _ in 0..20 {
            assert_eq!(s.evict_for(ip("127.0.0.2")), Some(ip("127.0.0.2")));
            let _ = s.add(ip("127.0.0.2"));
            // Newcomers are young: re-age them as a flood would.
            for p in s.lock().values_mut() {
                p.since = Instant::now() - EVICT_AFTER * 2;
            }
        }
        assert!(!real.evicted.is_cancelled());
        assert!(flood.iter().all(|f| f.evicted.is_cancelled()));
    }

    #[test]
    fn an_established_connection_is_kept_for_other_sources() {
        let s = Startups::new(8);
        let real = old(&s, "127.0.0.1", true);
        let others: Vec<Slot> = (0..3)
            .map(|i| old(&s, &format!("10.0.0.{i}"), true))
            .collect();
        // Every remaining candidate is established and from elsewhere.
        assert_eq!(s.evict_for(ip("192.0.2.9")), None);
        assert!(!real.evicted.is_cancelled());
        // Its own source may still replace it.
        assert_eq!(s.evict_for(ip("127.0.0.1")), Some(ip("127.0.0.1")));
        assert!(real.evicted.is_cancelled());
        assert!(others.iter().all(|o| !o.evicted.is_cancelled()));
    }

    #[test]
    fn a_source_holding_most_slots_loses_its_protection() {
        let s = Startups::new(8);
        let real = old(&s, "127.0.0.1", true);
        let flood: Vec<Slot> = (0..5).map(|_| old(&s, "127.0.0.2", true)).collect();
        assert_eq!(s.evict_for(ip("127.0.0.1")), Some(ip("127.0.0.2")));
        assert!(!real.evicted.is_cancelled());
        assert_eq!(flood.iter().filter(|f| f.evicted.is_cancelled()).count(), 1);
    }

    /// A cleartext packet: length, padding length, type, body, padding.
    fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
        let pad = 4usize;
        let len = (1 + 1 + body.len() + pad) as u32;
        let mut p = len.to_be_bytes().to_vec();
        p.push(pad as u8);
        p.push(kind);
        p.extend_from_slice(body);
        p.extend(std::iter::repeat_n(0u8, pad));
        p
    }

    #[test]
    fn the_watch_sees_the_end_of_the_key_exchange_in_any_chunking() {
        let mut stream = b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n".to_vec();
        stream.extend(packet(20, &[7u8; 1500])); // KEXINIT
        stream.extend(packet(30, &[9u8; 40])); // KEX_ECDH_INIT
        stream.extend(packet(NEWKEYS, &[]));
        for chunk in [1, 3, 7, 4096] {
            let flag = Arc::new(AtomicBool::new(false));
            let mut w = KexWatch::new(flag.clone());
            for part in stream.chunks(chunk) {
                w.feed(part);
            }
            assert!(flag.load(Ordering::Relaxed), "chunks of {chunk}");
            assert!(!w.watching());
        }
        // Banner and KEXINIT only: not yet.
        let flag = Arc::new(AtomicBool::new(false));
        let mut w = KexWatch::new(flag.clone());
        w.feed(stream.get(..stream.len() - 10).unwrap_or_default());
        assert!(!flag.load(Ordering::Relaxed));
        // Not SSH at all.
        let flag = Arc::new(AtomicBool::new(false));
        let mut w = KexWatch::new(flag.clone());
        w.feed(b"GET / HTTP/1.0\r\n\r\n\x00\x00\x00\x0c\x04\x15");
        w.feed(&[0u8; 5000]);
        assert!(!flag.load(Ordering::Relaxed));
    }

    #[test]
    fn young_connections_are_not_evicted() {
        let s = Startups::new(2);
        let a = s.add(ip("127.0.0.2"));
        let _b = s.add(ip("127.0.0.2"));
        assert_eq!(s.evict_for(ip("127.0.0.3")), None);
        s.done(a.seq);
        assert_eq!(s.lock().len(), 1);
    }
}
