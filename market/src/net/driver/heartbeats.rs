//! Heartbeats heard on gossip wait here a moment so their signatures are
//! checked in batches ([`flowshield_proto::verify_batch`]): a fullnode
//! hears thousands a second, and one batch costs well under the sum of its
//! signatures checked one by one. Each heartbeat still gets the verdict it
//! would get alone, in the order it arrived.
//!
//! A batch is checked when it holds [`MAX_BATCH`] heartbeats or when its
//! first has waited [`MAX_WAIT`], whichever comes first; heartbeats come
//! every few seconds, so the wait changes nothing a reader of the index
//! can see.

use flowshield_proto::{Heartbeat, PeerId, SignedMessage};
use libp2p::gossipsub::MessageId;
use std::pin::Pin;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The most heartbeats checked in one batch.
pub(super) const MAX_BATCH: usize = 512;
/// The longest a heartbeat waits for its batch to fill: at 2000
/// heartbeats/s a batch then fills to [`MAX_BATCH`], where dalek's
/// Pippenger multiplication picks a wider window and, by its operation
/// count, costs about a fifth less per signature than at the 200 of a
/// 100 ms wait (the batch thread measured 4.5–5.2 % of a core against
/// 5.4–5.8 % in `scripts/bench-market.sh`), and a
/// heartbeat, sent every few seconds, is indexed a quarter second later.
pub(super) const MAX_WAIT: Duration = Duration::from_millis(250);

/// A heartbeat that decoded, waiting for its signature check.
pub(super) struct Waiting {
    pub signed: SignedMessage<Heartbeat>,
    /// The bytes it was decoded from (kept as its text when canonical).
    pub data: Vec<u8>,
    pub message_id: MessageId,
    pub via: PeerId,
}

/// The batch being filled and the timer that closes it.
pub(super) struct HeartbeatBatch {
    waiting: Vec<Waiting>,
    timer: Pin<Box<Sleep>>,
}

impl HeartbeatBatch {
    pub fn new() -> Self {
        Self {
            waiting: Vec::new(),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// Adds a heartbeat; true when the batch is full and due now.
    pub fn push(&mut self, heartbeat: Waiting) -> bool {
        if self.waiting.is_empty() {
            self.timer.as_mut().reset(Instant::now() + MAX_WAIT);
        }
        self.waiting.push(heartbeat);
        self.waiting.len() >= MAX_BATCH
    }

    /// Whether a batch is open (the timer is armed only then).
    pub fn is_open(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Resolves when the open batch has waited [`MAX_WAIT`].
    pub fn due(&mut self) -> &mut Pin<Box<Sleep>> {
        &mut self.timer
    }

    /// Closes the batch: its heartbeats in arrival order.
    pub fn take(&mut self) -> Vec<Waiting> {
        std::mem::take(&mut self.waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowshield_proto::Keypair;

    fn waiting() -> Waiting {
        let keypair = Keypair::generate_ed25519();
        Waiting {
            signed: SignedMessage::from_parts(vec![1], keypair.public().encode_protobuf(), vec![]),
            data: Vec::new(),
            message_id: MessageId::new(b"id"),
            via: keypair.public().to_peer_id(),
        }
    }

    #[tokio::test]
    async fn a_batch_closes_when_full_or_when_its_first_has_waited() {
        let mut batch = HeartbeatBatch::new();
        assert!(!batch.is_open());
        for _ in 0..MAX_BATCH - 1 {
            assert!(!batch.push(waiting()));
        }
        assert!(batch.push(waiting()), "full");
        assert_eq!(batch.take().len(), MAX_BATCH);
        assert!(!batch.is_open());

        let before = Instant::now();
        batch.push(waiting());
        let after = Instant::now();
        // A later heartbeat does not push the deadline back.
        batch.push(waiting());
        let deadline = batch.due().deadline();
        assert!(before + MAX_WAIT <= deadline && deadline <= after + MAX_WAIT);
        batch.due().as_mut().await;
        assert!(Instant::now() >= before + MAX_WAIT);
        assert_eq!(batch.take().len(), 2);
    }
}
