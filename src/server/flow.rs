//! Client-to-target flow control: what a client may send, and what the
//! bastion holds for it, whatever the peer does.
//!
//! russh 0.65 does not enforce the receive window it advertises: a
//! CHANNEL_DATA past a channel's window only skips russh's window
//! bookkeeping ("ignore extra data" in `adjust_window_size`) and still
//! reaches the handler. And russh refills the window as data arrives, not
//! as the bastion forwards it. So the bastion keeps its own books:
//!
//! - [`Windows`]: per channel, the window the peer still has, exactly as
//!   russh granted it. A packet larger than that is a protocol violation
//!   that ends the connection.
//! - [`Budget`]: per connection, the bytes queued in the bastion on their
//!   way to targets, each queued item charged [`ITEM_COST`] on top so that
//!   a flood of tiny packets counts for what it costs. Above
//!   [`BACKLOG_HIGH`] the windows are no longer refilled (see
//!   `ConnHandler::adjust_window`); above the hard limit the connection
//!   ends. A peer that respects its windows only reaches the hard limit by
//!   trickling into a target that reads nothing for many minutes.
//! - [`Inbox`]: the queue from the handler to one channel's task.
//!   Consecutive data is coalesced, so memory stays close to the bytes
//!   held; control messages (window changes, signals, env...) are not
//!   flow-controlled by SSH, so a channel holds at most [`MAX_CONTROLS`].
//!
//! Layer: near the bottom; may import `chan` only.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use russh::ChannelId;
use tokio::sync::Notify;

use super::chan::ChanEvent;

/// The channel window the bastion grants (and every channel starts with).
pub const WINDOW: u32 = 2 * 1024 * 1024;
/// Bytes queued for one connection above which the client's windows are
/// no longer refilled.
pub const BACKLOG_HIGH: usize = 8 * 1024 * 1024;
/// Slack on top of the windows in the hard limit: control messages and
/// the trickle that keeps the window callback alive.
const HARD_SLACK: usize = 8 * 1024 * 1024;
/// What one queued item costs beyond its bytes (queue slot, allocation).
pub const ITEM_COST: usize = 128;
/// Data is coalesced into chunks of at most this size.
const COALESCE: usize = 64 * 1024;
/// Control messages one channel may have queued at once.
pub const MAX_CONTROLS: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChannelFlowError {
    /// The peer sent more than the channel's window.
    #[error("sent {sent} bytes on a channel whose window was {window}")]
    WindowExceeded { window: u32, sent: usize },
    /// The connection's queued input is over the hard limit.
    #[error("queued client input over the connection's limit ({limit} bytes)")]
    BudgetExceeded { limit: usize },
    /// A channel's queue of control messages is full.
    #[error("more than {MAX_CONTROLS} control messages queued on one channel")]
    TooManyControls,
    /// The channel's task is gone; the event is dropped.
    #[error("the channel is closed")]
    Closed,
}

impl ChannelFlowError {
    /// Whether the peer broke the rules (the connection ends, audited), as
    /// opposed to a message for a channel that is already done.
    pub fn is_violation(&self) -> bool {
        !matches!(self, ChannelFlowError::Closed)
    }
}

/// Bytes queued in the bastion for one connection.
#[derive(Debug)]
pub struct Budget {
    queued: AtomicUsize,
    hard: usize,
}

impl Budget {
    /// The hard limit allows every open channel its full window on top of
    /// the high-water mark, so a peer that respects its windows never
    /// reaches it by bursts alone.
    pub fn new(max_channels: usize) -> Arc<Budget> {
        let windows = max_channels.saturating_mul(WINDOW as usize);
        Arc::new(Budget {
            queued: AtomicUsize::new(0),
            hard: BACKLOG_HIGH
                .saturating_add(windows)
                .saturating_add(HARD_SLACK),
        })
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Whether the client's windows should stop being refilled.
    pub fn throttled(&self) -> bool {
        self.queued() > BACKLOG_HIGH
    }

    #[cfg(test)]
    pub fn limit(&self) -> usize {
        self.hard
    }

    fn charge(&self, n: usize) -> Result<(), ChannelFlowError> {
        let before = self.queued.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > self.hard {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            return Err(ChannelFlowError::BudgetExceeded { limit: self.hard });
        }
        Ok(())
    }

    fn release(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Per channel, the window the peer still has.
#[derive(Debug)]
pub struct Windows<K = ChannelId> {
    left: HashMap<K, u32>,
}

impl<K> Default for Windows<K> {
    fn default() -> Self {
        Windows {
            left: HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Copy> Windows<K> {
    /// Accounts for `len` bytes received on `channel`; `after` is russh's
    /// window for the channel once it processed the packet (refilled when
    /// it sent a WINDOW_ADJUST). A channel not seen yet has the initial
    /// [`WINDOW`]: russh opens every channel with its configured window.
    pub fn received(&mut self, channel: K, len: usize, after: u32) -> Result<(), ChannelFlowError> {
        let window = self.left.get(&channel).copied().unwrap_or(WINDOW);
        if len > window as usize {
            return Err(ChannelFlowError::WindowExceeded { window, sent: len });
        }
        self.left.insert(channel, after);
        Ok(())
    }

    pub fn forget(&mut self, channel: K) {
        self.left.remove(&channel);
    }

    /// Drops channels for which `gone` holds (closed by the bastion: russh
    /// does not report the peer's answering close).
    pub fn sweep(&mut self, gone: impl Fn(K) -> bool) {
        self.left.retain(|c, _| !gone(*c));
    }
}

enum Item {
    Data(BytesMut),
    Event(ChanEvent, usize),
}

struct Queue {
    items: VecDeque<Item>,
    controls: usize,
    sender: bool,
    receiver: bool,
}

struct Inner {
    queue: Mutex<Queue>,
    ready: Notify,
    budget: Arc<Budget>,
}

/// The sending half, held by the handler (or a channel's drain task).
pub struct Inbox {
    inner: Arc<Inner>,
}

/// The receiving half, held by the channel's task.
pub struct InboxRx {
    inner: Arc<Inner>,
}

/// A new queue whose bytes count against `budget`.
pub fn inbox(budget: Arc<Budget>) -> (Inbox, InboxRx) {
    let inner = Arc::new(Inner {
        queue: Mutex::new(Queue {
            items: VecDeque::new(),
            controls: 0,
            sender: true,
            receiver: true,
        }),
        ready: Notify::new(),
        budget,
    });
    (
        Inbox {
            inner: inner.clone(),
        },
        InboxRx { inner },
    )
}

fn lock(inner: &Inner) -> std::sync::MutexGuard<'_, Queue> {
    // A panic while holding the lock leaves a consistent queue (every
    // mutation is a single push or pop), so poisoning is not fatal.
    match inner.queue.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Bytes an event holds besides its slot.
fn payload(ev: &ChanEvent) -> usize {
    match ev {
        ChanEvent::Pty { term, modes, .. } => term.len() + modes.len() * 8,
        ChanEvent::Env(k, v) => k.len() + v.len(),
        ChanEvent::Exec(c) => c.len(),
        ChanEvent::Subsystem(s) => s.len(),
        ChanEvent::Data(b) => b.len(),
        _ => 0,
    }
}

impl Inbox {
    /// Queues data, appended to the last queued chunk when there is room.
    pub fn data(&self, bytes: &[u8]) -> Result<(), ChannelFlowError> {
        let mut q = lock(&self.inner);
        if !q.receiver {
            return Err(ChannelFlowError::Closed);
        }
        let n = bytes.len();
        if let Some(Item::Data(last)) = q.items.back_mut()
            && last.len() + n <= COALESCE
        {
            self.inner.budget.charge(n)?;
            last.extend_from_slice(bytes);
        } else {
            self.inner.budget.charge(n + ITEM_COST)?;
            q.items.push_back(Item::Data(BytesMut::from(bytes)));
        }
        drop(q);
        self.inner.ready.notify_one();
        Ok(())
    }

    /// Queues a control event. A window change replaces one queued just
    /// before it (only the last size matters). A close is always accepted.
    pub fn event(&self, ev: ChanEvent) -> Result<(), ChannelFlowError> {
        if let ChanEvent::Data(b) = &ev {
            return self.data(b);
        }
        let mut q = lock(&self.inner);
        if !q.receiver {
            return Err(ChannelFlowError::Closed);
        }
        if matches!(ev, ChanEvent::WindowChange { .. })
            && let Some(Item::Event(last @ ChanEvent::WindowChange { .. }, _)) = q.items.back_mut()
        {
            *last = ev;
        } else {
            let is_close = matches!(ev, ChanEvent::Close);
            if q.controls >= MAX_CONTROLS && !is_close {
                return Err(ChannelFlowError::TooManyControls);
            }
            let charge = ITEM_COST + payload(&ev);
            if is_close {
                // Never refused: the channel's task must learn of it.
                self.inner
                    .budget
                    .queued
                    .fetch_add(charge, Ordering::Relaxed);
            } else {
                self.inner.budget.charge(charge)?;
            }
            q.controls += 1;
            q.items.push_back(Item::Event(ev, charge));
        }
        drop(q);
        self.inner.ready.notify_one();
        Ok(())
    }

    /// Whether the channel's task still reads this queue.
    pub fn is_open(&self) -> bool {
        lock(&self.inner).receiver
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        lock(&self.inner).sender = false;
        self.inner.ready.notify_one();
    }
}

impl InboxRx {
    /// The next event; `None` once the sender is gone and the queue empty.
    /// Cancel-safe: an event is taken only when this returns it.
    pub async fn recv(&mut self) -> Option<ChanEvent> {
        loop {
            {
                let mut q = lock(&self.inner);
                match q.items.pop_front() {
                    Some(Item::Data(b)) => {
                        self.inner.budget.release(b.len() + ITEM_COST);
                        return Some(ChanEvent::Data(b.freeze()));
                    }
                    Some(Item::Event(ev, charge)) => {
                        q.controls = q.controls.saturating_sub(1);
                        self.inner.budget.release(charge);
                        return Some(ev);
                    }
                    None if !q.sender => return None,
                    None => {}
                }
            }
            // notify_one keeps a permit when nobody waits, so a push
            // between the unlock above and this await is not missed.
            self.inner.ready.notified().await;
        }
    }
}

impl Drop for InboxRx {
    fn drop(&mut self) {
        let mut q = lock(&self.inner);
        q.receiver = false;
        let mut held = 0;
        for item in q.items.drain(..) {
            held += match item {
                Item::Data(b) => b.len() + ITEM_COST,
                Item::Event(_, charge) => charge,
            };
        }
        q.controls = 0;
        drop(q);
        self.inner.budget.release(held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(rx: &mut InboxRx) -> Option<ChanEvent> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_millis(50), rx.recv())
                .await
                .ok()
                .flatten()
        })
    }

    #[test]
    fn a_packet_past_the_window_is_a_violation() {
        let mut w = Windows::<u32>::default();
        let c = 3;
        // First packet: the initial window applies.
        assert_eq!(w.received(c, 32 * 1024, WINDOW - 32 * 1024), Ok(()));
        assert!(w.received(c, WINDOW as usize, 0).is_err());
        // After a refill (russh's window after the packet), more may come.
        assert_eq!(w.received(c, 1000, WINDOW), Ok(()));
        assert_eq!(w.received(c, WINDOW as usize, 0), Ok(()));
        assert_eq!(
            w.received(c, 1, 0),
            Err(ChannelFlowError::WindowExceeded { window: 0, sent: 1 })
        );
        w.forget(c);
        assert_eq!(
            w.received(c, 1, WINDOW - 1),
            Ok(()),
            "a new channel id starts afresh"
        );
    }

    #[test]
    fn data_is_coalesced_and_accounted() {
        let budget = Budget::new(1);
        let (tx, mut rx) = inbox(budget.clone());
        for _ in 0..1000 {
            tx.data(b"x").unwrap();
        }
        assert_eq!(
            budget.queued(),
            1000 + ITEM_COST,
            "one chunk for tiny packets"
        );
        match take(&mut rx) {
            Some(ChanEvent::Data(b)) => assert_eq!(b.len(), 1000),
            other => panic!("{other:?}"),
        }
        assert_eq!(budget.queued(), 0);
        tx.data(b"abc").unwrap();
        tx.event(ChanEvent::Eof).unwrap();
        drop(rx);
        assert_eq!(
            budget.queued(),
            0,
            "a dropped receiver releases what it held"
        );
        assert_eq!(tx.data(b"late"), Err(ChannelFlowError::Closed));
    }

    #[test]
    fn controls_are_capped_but_close_always_passes() {
        let budget = Budget::new(1);
        let (tx, mut rx) = inbox(budget.clone());
        for i in 0..MAX_CONTROLS {
            let sig = if i % 2 == 0 {
                ChanEvent::Eof
            } else {
                ChanEvent::Shell
            };
            tx.event(sig).unwrap();
        }
        assert_eq!(
            tx.event(ChanEvent::Eof),
            Err(ChannelFlowError::TooManyControls)
        );
        assert!(tx.event(ChanEvent::Eof).unwrap_err().is_violation());
        tx.event(ChanEvent::Close).unwrap();
        // Window changes in a row collapse into the last one.
        let (tx2, mut rx2) = inbox(budget.clone());
        for cols in 1..=5000 {
            tx2.event(ChanEvent::WindowChange {
                cols,
                rows: 24,
                pix_width: 0,
                pix_height: 0,
            })
            .unwrap();
        }
        match take(&mut rx2) {
            Some(ChanEvent::WindowChange { cols, .. }) => assert_eq!(cols, 5000),
            other => panic!("{other:?}"),
        }
        drop(tx2);
        assert!(take(&mut rx2).is_none(), "sender gone, queue empty");
        let mut n = 0;
        while take(&mut rx).is_some() {
            n += 1;
            if n > MAX_CONTROLS {
                break;
            }
        }
        assert_eq!(n, MAX_CONTROLS + 1);
        assert_eq!(budget.queued(), 0);
    }

    #[test]
    fn the_hard_limit_refuses_and_releases_nothing_it_did_not_take() {
        let budget = Budget::new(1);
        let limit = budget.limit();
        let (tx, _rx) = inbox(budget.clone());
        let big = vec![0u8; COALESCE];
        let mut refused = false;
        for _ in 0..(limit / COALESCE + 2) {
            if let Err(e) = tx.data(&big) {
                assert_eq!(e, ChannelFlowError::BudgetExceeded { limit });
                refused = true;
                break;
            }
        }
        assert!(refused);
        assert!(budget.queued() <= limit);
        assert!(budget.throttled());
    }
}
