//! Verifying the audit log: every node's hash chain, its seals (with the
//! initial seal keys, their MACs) and heads pinned in signed reports.
//! May import: the parent (`store::audit`), the store, seal maths.

use super::*;

impl Store {
    /// Recomputes every node's chain and reports the first fault, if any:
    /// a changed event (its hash does not match its fields), an inserted
    /// one (its sequence number or `prev_hash` does not follow its
    /// predecessor, or it lies past its node's chain head), or a removed
    /// one (a sequence gap, or a chain head that promises more events than
    /// exist). Streams the table once, inside one read snapshot so that
    /// events appended meanwhile (a live server) are not mistaken for
    /// faults. Seals are checked for order and against the chain, but
    /// not proven: see [`Store::verify_chain_with`].
    pub async fn verify_chain(&self) -> Result<ChainReport, StoreError> {
        self.verify_chain_with(&ChainCheck::default()).await
    }

    /// [`Store::verify_chain`], and the seals (`crate::seal`): each node's
    /// seals must have consecutive epochs from 0, each seal's `seq` must
    /// still carry the sealed hash (so an event changed, inserted or
    /// removed at or before a seal, or a removed sealed tail, is found
    /// even when every later hash and the head were recomputed), and with
    /// the node's initial key in `check.keys` each seal's MAC must verify
    /// under the key derived for its epoch. `check.pins` (heads signed in
    /// daily reports) must still be in the chain, and `check.key_epochs`
    /// (the epoch a node's key file is at) says how many seals must exist.
    pub async fn verify_chain_with(&self, check: &ChainCheck) -> Result<ChainReport, StoreError> {
        let mut tx = match self.backend() {
            Backend::Postgres => {
                self.pool()
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
            }
            // A deferred read transaction in WAL mode sees one snapshot,
            // taken at its first read, until it ends.
            Backend::Sqlite => self.pool().begin().await,
        }
        .ctx("begin read snapshot")?;

        let mut nodes: HashMap<String, NodeWalk> = HashMap::new();
        let heads = sqlx::query("SELECT node, seq, hash FROM audit_heads")
            .fetch_all(&mut *tx)
            .await
            .ctx("read audit chain heads")?;
        for head in &heads {
            let node: String = get(head, "node")?;
            let seq: i64 = get(head, "seq")?;
            let hash: String = get(head, "hash")?;
            nodes.insert(node, NodeWalk::new(Some((seq, hash))));
        }
        for seal in Store::all_seals(&mut tx).await? {
            nodes
                .entry(seal.node.clone())
                .or_insert_with(|| NodeWalk::new(None))
                .seals
                .push_back(seal);
        }
        for pin in &check.pins {
            nodes
                .entry(pin.node.clone())
                .or_insert_with(|| NodeWalk::new(None))
                .pins
                .push(pin.clone());
        }

        let mut faults: Vec<(FaultKey, ChainFault)> = Vec::new();
        for (node, walk) in nodes.iter_mut() {
            walk.pins.sort_by_key(|p| std::cmp::Reverse(p.seq));
            walk.key = check.keys.get(node).cloned();
            if !check.keys.is_empty() && walk.key.is_none() && !walk.seals.is_empty() {
                faults.push((
                    FaultKey(i64::MAX, 2),
                    ChainFault {
                        node: node.clone(),
                        seq: 0,
                        id: None,
                        problem: format!(
                            "no seal key given for node {node}: its seals cannot be proven"
                        ),
                    },
                ));
            }
        }

        let mut events: u64 = 0;
        {
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT_EVENTS} ORDER BY id")))
                .fetch(&mut *tx);
            while let Some(row) = rows.next().await {
                let ev = StoredEvent::from_row(&row.ctx("read audit events")?)?;
                events += 1;
                let walk = nodes
                    .entry(ev.node.clone())
                    .or_insert_with(|| NodeWalk::new(None));
                if walk.broken {
                    continue;
                }
                if let Some(fault) = walk.step(&ev) {
                    walk.broken = true;
                    faults.push(fault);
                }
            }
        }
        tx.rollback().await.ctx("end read snapshot")?;

        let mut summary = Vec::new();
        for (node, walk) in &nodes {
            summary.push(NodeSeals {
                node: node.clone(),
                last_seq: walk.last_seq,
                seals: walk.next_epoch,
                sealed_epoch: walk.sealed_epoch,
                sealed_seq: walk.sealed_seq,
                proven: walk.key.is_some() && !walk.broken && walk.seals.is_empty(),
                pins: walk.pins_found,
            });
            if walk.broken {
                continue;
            }
            if let Some(fault) = walk.finish(node, check.key_epochs.get(node).copied()) {
                faults.push(fault);
            }
        }
        summary.sort_by(|a, b| a.node.cmp(&b.node));
        let first_bad = faults
            .into_iter()
            .min_by_key(|(key, _)| *key)
            .map(|(_, f)| f);
        if first_bad.is_some() {
            for n in &mut summary {
                n.proven = false;
            }
        }
        Ok(ChainReport {
            events,
            first_bad,
            nodes: summary,
        })
    }
}

/// What [`Store::verify_chain_with`] checks besides the chain itself.
#[derive(Debug, Default)]
pub struct ChainCheck {
    /// Initial seal keys (`K_0`) by node. When any is given, every node
    /// with seals needs one.
    pub keys: HashMap<String, SealKey>,
    /// Heads pinned elsewhere: the chain must still hold each.
    pub pins: Vec<Pin>,
    /// The epoch a node's key file is at: seals of every epoch below it
    /// must exist (a removed last seal shows here).
    pub key_epochs: HashMap<String, i64>,
}

/// A chain head recorded elsewhere (a signed daily report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub node: String,
    pub seq: i64,
    pub hash: String,
    /// Where it comes from, for messages.
    pub what: String,
}

/// Orders faults by where they sit in the table: a fault at row `id` sorts
/// at `(id, 0)`; a removal sorts just after the last intact row before it,
/// `(prev_id, 1)`, since the removed rows had ids above that one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct FaultKey(i64, u8);

impl FaultKey {
    pub(super) fn at(id: i64) -> FaultKey {
        FaultKey(id, 0)
    }
    pub(super) fn after(id: i64) -> FaultKey {
        FaultKey(id, 1)
    }
}

/// Verification state of one node's chain.
struct NodeWalk {
    /// The node's chain head row: last `seq` and `hash`. `None` when the
    /// node has events but no head, which `audit` never leaves behind.
    head: Option<(i64, String)>,
    /// Id of the last intact row (0 before the first).
    last_id: i64,
    last_seq: i64,
    last_hash: String,
    broken: bool,
    /// The node's seals not yet reached by the walk, in epoch order.
    seals: VecDeque<SealRow>,
    /// The epoch the next seal must have, and its key when proving.
    next_epoch: i64,
    key: Option<SealKey>,
    /// The last seal checked.
    sealed_epoch: Option<i64>,
    sealed_seq: i64,
    /// Pins not yet reached, highest `seq` first (popped from the end).
    pins: Vec<Pin>,
    pins_found: usize,
}

impl NodeWalk {
    fn new(head: Option<(i64, String)>) -> NodeWalk {
        NodeWalk {
            head,
            last_id: 0,
            last_seq: 0,
            last_hash: GENESIS_HASH.to_string(),
            broken: false,
            seals: VecDeque::new(),
            next_epoch: 0,
            key: None,
            sealed_epoch: None,
            sealed_seq: 0,
            pins: Vec::new(),
            pins_found: 0,
        }
    }

    /// The seals and pins at or before `ev` (just accepted into the
    /// chain): each must name this event's hash.
    fn checkpoints(&mut self, ev: &StoredEvent) -> Option<(FaultKey, ChainFault)> {
        let fault = |seq: i64, problem: String| {
            Some((
                FaultKey::at(ev.id),
                ChainFault {
                    node: ev.node.clone(),
                    seq,
                    id: Some(ev.id),
                    problem,
                },
            ))
        };
        while self.seals.front().is_some_and(|s| s.seq <= ev.seq) {
            let s = self.seals.pop_front()?;
            let e = s.epoch;
            if e > self.next_epoch {
                let range = if e - self.next_epoch == 1 {
                    format!("the seal of epoch {} is", self.next_epoch)
                } else {
                    format!("the seals of epochs {}..{} are", self.next_epoch, e - 1)
                };
                return fault(
                    ev.seq,
                    format!("removed: {range} missing (before epoch {e})"),
                );
            }
            if e < self.next_epoch {
                return fault(ev.seq, format!("inserted: seal epoch {e} repeats"));
            }
            if let Some(key) = &self.key
                && !crate::seal::seal_mac_ok(key, &s.fields(), &s.mac)
            {
                return fault(
                    ev.seq,
                    format!(
                        "forged: the seal of epoch {e} does not verify under the key \
                         derived from the initial seal key"
                    ),
                );
            }
            if s.seq < ev.seq || s.seq <= self.sealed_seq {
                return fault(
                    s.seq,
                    format!("inserted: seal epoch {e} names seq {}, out of order", s.seq),
                );
            }
            if s.hash != ev.hash {
                return fault(
                    ev.seq,
                    format!(
                        "changed: sealed epoch {e} covers seq {}..{}, and the chain hash at \
                         seq {} is no longer the sealed one (an event in that range was \
                         changed, inserted or removed)",
                        self.sealed_seq + 1,
                        s.seq,
                        s.seq
                    ),
                );
            }
            self.sealed_epoch = Some(e);
            self.sealed_seq = s.seq;
            self.next_epoch = e + 1;
            self.key = self.key.as_ref().map(SealKey::evolve);
        }
        while self.pins.last().is_some_and(|p| p.seq <= ev.seq) {
            let p = self.pins.pop()?;
            if p.seq < ev.seq || p.hash != ev.hash {
                return fault(
                    p.seq,
                    format!(
                        "changed: the chain head pinned by {} (seq {}, hash {}) is not in the \
                         chain any more",
                        p.what, p.seq, p.hash
                    ),
                );
            }
            self.pins_found += 1;
        }
        None
    }

    fn step(&mut self, ev: &StoredEvent) -> Option<(FaultKey, ChainFault)> {
        let expected = self.last_seq.saturating_add(1);
        let fault = |key: FaultKey, seq: i64, id: Option<i64>, problem: String| {
            Some((
                key,
                ChainFault {
                    node: ev.node.clone(),
                    seq,
                    id,
                    problem,
                },
            ))
        };
        if ev.seq > expected {
            let missing = if ev.seq - expected == 1 {
                format!("seq {expected} is missing")
            } else {
                format!("seq {expected}..{} are missing", ev.seq - 1)
            };
            let after = if self.last_id == 0 {
                "at the start of the chain".to_string()
            } else {
                format!("after id {}", self.last_id)
            };
            return fault(
                FaultKey::after(self.last_id),
                expected,
                None,
                format!("removed: {missing} ({after}, before id {})", ev.id),
            );
        }
        if ev.seq < expected {
            return fault(
                FaultKey::at(ev.id),
                ev.seq,
                Some(ev.id),
                format!(
                    "inserted: seq {} repeats or goes back (expected {expected})",
                    ev.seq
                ),
            );
        }
        let head_seq = match &self.head {
            None => {
                return fault(
                    FaultKey::at(ev.id),
                    ev.seq,
                    Some(ev.id),
                    "inserted: the node has no chain head".into(),
                );
            }
            Some((seq, _)) => *seq,
        };
        if ev.seq > head_seq {
            return fault(
                FaultKey::at(ev.id),
                ev.seq,
                Some(ev.id),
                format!("inserted: past the node's chain head (seq {head_seq})"),
            );
        }
        if ev.prev_hash != self.last_hash {
            return fault(
                FaultKey::at(ev.id),
                ev.seq,
                Some(ev.id),
                "inserted or reordered: prev_hash does not match the previous event".into(),
            );
        }
        let computed = ev.computed_hash();
        if computed != ev.hash {
            return fault(
                FaultKey::at(ev.id),
                ev.seq,
                Some(ev.id),
                "changed: stored fields do not match the event's hash".into(),
            );
        }
        self.last_id = ev.id;
        self.last_seq = ev.seq;
        self.last_hash = computed;
        self.checkpoints(ev)
    }

    /// After the walk: compares the last intact event with the head row,
    /// then what seals and pins promise with what the chain holds.
    fn finish(&self, node: &str, key_epoch: Option<i64>) -> Option<(FaultKey, ChainFault)> {
        self.finish_head(node)
            .or_else(|| self.finish_seals(node, key_epoch))
    }

    fn finish_seals(&self, node: &str, key_epoch: Option<i64>) -> Option<(FaultKey, ChainFault)> {
        let fault = |seq: i64, problem: String| {
            Some((
                FaultKey::after(self.last_id),
                ChainFault {
                    node: node.to_string(),
                    seq,
                    id: None,
                    problem,
                },
            ))
        };
        if let Some(s) = self.seals.front() {
            return fault(
                self.last_seq.saturating_add(1),
                format!(
                    "removed: sealed epoch {} covers the chain up to seq {}, but it ends at seq {}",
                    s.epoch, s.seq, self.last_seq
                ),
            );
        }
        if let Some(p) = self.pins.last() {
            return fault(
                self.last_seq.saturating_add(1),
                format!(
                    "removed: the chain head pinned by {} is seq {}, but the chain ends at seq {}",
                    p.what, p.seq, self.last_seq
                ),
            );
        }
        if let Some(epoch) = key_epoch
            && epoch > self.next_epoch
        {
            return fault(
                self.sealed_seq.saturating_add(1),
                format!(
                    "removed: the node's seal key is at epoch {epoch}, but the seals end \
                     before epoch {} (seals removed)",
                    self.next_epoch
                ),
            );
        }
        None
    }

    fn finish_head(&self, node: &str) -> Option<(FaultKey, ChainFault)> {
        let (head_seq, head_hash) = self.head.as_ref()?;
        let fault = |key: FaultKey, seq: i64, id: Option<i64>, problem: String| {
            Some((
                key,
                ChainFault {
                    node: node.to_string(),
                    seq,
                    id,
                    problem,
                },
            ))
        };
        if *head_seq > self.last_seq {
            let first_missing = self.last_seq.saturating_add(1);
            let range = if *head_seq == first_missing {
                format!("seq {first_missing} is missing")
            } else {
                format!("seq {first_missing}..{head_seq} are missing")
            };
            let after = if self.last_id == 0 {
                "the node has no events left".to_string()
            } else {
                format!("after id {}, the last event left", self.last_id)
            };
            return fault(
                FaultKey::after(self.last_id),
                first_missing,
                None,
                format!("removed: {range} ({after})"),
            );
        }
        // `step` refused rows past the head, so here the seqs are equal.
        if *head_hash != self.last_hash {
            return fault(
                FaultKey::at(self.last_id),
                self.last_seq,
                (self.last_id != 0).then_some(self.last_id),
                "changed: the chain head's hash does not match the last event".into(),
            );
        }
        None
    }
}
