//! The fullnode's event loop: verified heartbeats in, live offers and
//! batched SQL writes out; stake lookups and certificate verdicts (a
//! heartbeat waits beside the loop while its provider is looked up on
//! chain), market events, verifier reports from gossip, expiry.
//!
//! The gates, in order: the stake gate ([`stakegate`], with a market
//! contract), then the DeCA certificate gate ([`certgate`], when
//! configured). A refusal by either drops a live provider at once.
//!
//! Why batched: at 10k providers heartbeating every 5 s a fullnode takes
//! 2000 heartbeats a second. One SQL statement (and, in SQLite, one commit)
//! per heartbeat does not keep up on a small machine; so each accepted
//! heartbeat goes straight into the in-memory [`LiveOffers`] (what matching
//! reads) and into a pending map (newest per provider), which is written
//! in one transaction every `flush_interval`: new or changed offers as
//! multi-row upserts, unchanged ones as in-place updates of seq and times.
//! An unchanged offer is written at most once per `touch_interval` (a third
//! of the expiry time): memory has every heartbeat at once, SQL lags by at
//! most that much, which keeps the rows alive across a restart without
//! writing 2000 rows a second. [`FullnodeEvent::Indexed`] is sent once a
//! heartbeat is in SQL.

use crate::fullnode::certgate::{self, CertGate, Decision, VerifyJob};
use crate::fullnode::index::{IndexedProvider, ProviderIndex};
use crate::fullnode::live::{LiveEntry, SharedLive};
use crate::fullnode::metrics::Metrics;
use crate::fullnode::reports::ReportService;
use crate::fullnode::stakegate::{self, Found, LookupJob, StakeGate};
use crate::net::{MarketResponse, NetEvent, NetHandle};
use crate::unix_ms;
use flowshield_ca::registry::Registry;
use flowshield_ca::VerifyError;
use flowshield_chain::MarketClient;
use flowshield_proto::{ChainAddress, Heartbeat, PeerId};
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;

type Verdict = (VerifyJob, Result<u64, VerifyError>);
type Lookup = (LookupJob, Result<Found, String>);
/// A verified heartbeat on its way through the gates: the gossip peer
/// that relayed it, and (when the fullnode gates) the gossip message whose
/// forwarding waits for the verdict.
struct Held {
    heartbeat: Box<Heartbeat>,
    /// The signed envelope as text.
    envelope: String,
    via: PeerId,
    message_id: Option<MessageId>,
}

/// Heartbeats held per chain address while it is looked up (one per
/// PeerId; more PeerIds claiming one address are refused as busy).
const MAX_HELD_PER_ADDRESS: usize = 8;

/// What the fullnode did with a heartbeat (for observers such as tests).
#[derive(Debug, Clone, PartialEq)]
pub enum FullnodeEvent {
    Indexed { provider: PeerId, seq: u64 },
    Rejected { reason: &'static str },
    Expired { count: u64 },
}

/// Stake admission: the gate, the market it asks, and the addresses that
/// contract events say changed.
pub(crate) struct Stake {
    pub gate: StakeGate,
    pub market: MarketClient,
    pub lookup_timeout: std::time::Duration,
    pub changed: mpsc::Receiver<Vec<ChainAddress>>,
}

/// DeCA admission: the gate and the registry it checks against.
pub(crate) struct Deca {
    pub gate: CertGate,
    pub registry: Arc<dyn Registry>,
}

pub(crate) struct Ingest {
    pub net: NetHandle,
    pub index: ProviderIndex,
    pub live: SharedLive,
    pub metrics: Metrics,
    pub events: broadcast::Sender<FullnodeEvent>,
    pub expire_after: Duration,
    pub flush_interval: Duration,
    pub stake: Option<Stake>,
    pub deca: Option<Deca>,
    pub reports: Option<Arc<ReportService>>,
}

/// A heartbeat waiting for the next batch write.
struct Pending {
    record: IndexedProvider,
    /// The offer differs from the stored row (or there is none).
    changed: bool,
}

struct State {
    pending: HashMap<PeerId, Pending>,
    /// When each provider's row was last written.
    written: HashMap<PeerId, u64>,
    /// Waiting for a certificate verdict.
    held: HashMap<PeerId, Held>,
    /// Waiting for a stake lookup of their chain address.
    held_for_stake: HashMap<ChainAddress, HashMap<PeerId, Held>>,
    verdicts_tx: mpsc::Sender<Verdict>,
    lookups_tx: mpsc::Sender<Lookup>,
    /// Certificate checks and stake lookups running on chain; dropped
    /// (aborted) with the loop.
    checks: JoinSet<()>,
}

/// Runs a stake lookup beside the loop; its outcome comes back on
/// `state.lookups_tx`.
fn spawn_lookup(stake: &Stake, state: &mut State, job: LookupJob) {
    let market = stake.market.clone();
    let timeout = stake.lookup_timeout;
    let lookups = state.lookups_tx.clone();
    state.checks.spawn(async move {
        let outcome = stakegate::lookup(&market, job, timeout).await;
        let _ = lookups.send((job, outcome)).await;
    });
}

impl Ingest {
    pub async fn run(mut self, mut net_events: mpsc::Receiver<NetEvent>) {
        let mut expiry =
            tokio::time::interval((self.expire_after / 2).max(Duration::from_millis(100)));
        let mut flush = tokio::time::interval(self.flush_interval.max(Duration::from_millis(10)));
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (verdicts_tx, mut verdicts_rx) = mpsc::channel(1024);
        let (lookups_tx, mut lookups_rx) = mpsc::channel(1024);
        let mut state = State {
            pending: HashMap::new(),
            written: HashMap::new(),
            held: HashMap::new(),
            held_for_stake: HashMap::new(),
            verdicts_tx,
            lookups_tx,
            checks: JoinSet::new(),
        };
        // Without a stake gate this channel never yields.
        let (_no_changes, idle) = mpsc::channel(1);
        let mut changed = match &mut self.stake {
            Some(stake) => std::mem::replace(&mut stake.changed, idle),
            None => idle,
        };
        loop {
            tokio::select! {
                event = net_events.recv() => {
                    let Some(event) = event else { break };
                    self.handle_event(event, &mut state).await;
                }
                Some(_) = state.checks.join_next(), if !state.checks.is_empty() => {}
                Some((job, outcome)) = verdicts_rx.recv() => {
                    self.handle_verdict(job, outcome, &mut state).await;
                }
                Some((job, outcome)) = lookups_rx.recv() => {
                    self.handle_lookup(job, outcome, &mut state).await;
                }
                Some(addresses) = changed.recv() => {
                    if let Some(stake) = &mut self.stake {
                        for address in &addresses {
                            stake.gate.invalidate(address);
                        }
                    }
                    tracing::debug!(count = addresses.len(), "providers changed on chain");
                }
                _ = flush.tick() => self.flush(&mut state).await,
                _ = expiry.tick() => self.expire(&mut state).await,
            }
        }
    }

    async fn handle_event(&mut self, event: NetEvent, state: &mut State) {
        match event {
            NetEvent::HeartbeatAccepted {
                heartbeat,
                envelope,
                via,
                message_id,
            } => {
                let held = Held {
                    heartbeat,
                    envelope,
                    via,
                    message_id,
                };
                self.gate_heartbeat(held, state).await
            }
            NetEvent::HeartbeatRejected { error, .. } => self.count_refusal(error.reason()),
            NetEvent::CertAnnounced { announcement, .. } => {
                if let Some(deca) = &mut self.deca {
                    deca.gate.announce(&announcement);
                }
            }
            NetEvent::CertRejected { error, .. } => {
                self.metrics
                    .cert_checks
                    .with_label_values(&[error.reason()])
                    .inc();
            }
            NetEvent::Report {
                data,
                message_id,
                via,
            } => {
                let acceptance = match &self.reports {
                    Some(reports) => reports.accept_gossip(&data).await,
                    None => MessageAcceptance::Ignore,
                };
                let _ = self.net.validate_gossip(message_id, via, acceptance).await;
            }
            NetEvent::InboundRequest { channel, .. } => {
                let response = MarketResponse::Error("a fullnode answers over HTTP".into());
                let _ = self.net.respond(channel, response).await;
            }
            NetEvent::PeerSubscribed { .. } | NetEvent::Connected { .. } => {}
        }
    }

    fn count_refusal(&self, reason: &'static str) {
        self.metrics.heartbeats.with_label_values(&[reason]).inc();
        let _ = self.events.send(FullnodeEvent::Rejected { reason });
    }

    /// Tells gossip whether to forward a deferred heartbeat: only what the
    /// gates admitted travels on; refused ones are dropped without
    /// penalizing the relay (it may not gate).
    async fn settle(&self, held: &Held, admitted: bool) {
        if let Some(message_id) = &held.message_id {
            let acceptance = if admitted {
                MessageAcceptance::Accept
            } else {
                MessageAcceptance::Ignore
            };
            let _ = self
                .net
                .validate_gossip(message_id.clone(), held.via, acceptance)
                .await;
        }
    }

    /// Holds `held` for a verdict; a heartbeat it replaces from the same
    /// provider is not forwarded.
    async fn hold(&self, slot: Option<Held>) {
        if let Some(replaced) = slot {
            self.settle(&replaced, false).await;
        }
    }

    async fn gate_heartbeat(&mut self, mut held: Held, state: &mut State) {
        let now = unix_ms();
        let provider = held.heartbeat.offer.provider_peer_id;
        if let Some(stake) = &mut self.stake {
            let address = held.heartbeat.offer.chain_address;
            match stake.gate.check_via(&held.heartbeat, held.via, now) {
                stakegate::Decision::Accept => {
                    if stake.gate.first_verdict(provider, "accepted") {
                        tracing::info!(%provider, %address, "provider admitted: staked on chain");
                    }
                }
                stakegate::Decision::Refuse(reason) => {
                    if stake.gate.first_verdict(provider, reason) {
                        tracing::info!(%provider, %address, reason, "provider refused by the stake gate");
                    }
                    self.settle(&held, false).await;
                    if stakegate::is_transient(reason) {
                        // The chain did not answer: a live provider stays
                        // until it does.
                        return self.count_refusal(reason);
                    }
                    return self.refuse(&provider, reason, state).await;
                }
                stakegate::Decision::Hold => {
                    let waiting = state.held_for_stake.entry(address).or_default();
                    if waiting.len() >= MAX_HELD_PER_ADDRESS && !waiting.contains_key(&provider) {
                        // Not held, not dropped: a flood of PeerIds claiming
                        // an address must not evict the one it belongs to.
                        self.settle(&held, false).await;
                        return self.count_refusal("chain_checks_busy");
                    }
                    let replaced = waiting.insert(provider, held);
                    return self.hold(replaced).await;
                }
                stakegate::Decision::Lookup(job) => {
                    let replaced = state
                        .held_for_stake
                        .entry(address)
                        .or_default()
                        .insert(provider, held);
                    spawn_lookup(stake, state, job);
                    return self.hold(replaced).await;
                }
            }
        }
        let decision = match &mut self.deca {
            Some(deca) => deca.gate.check(&held.heartbeat, now),
            None => Decision::Accept,
        };
        match decision {
            Decision::Accept => {
                let envelope = std::mem::take(&mut held.envelope);
                self.admit(&held.heartbeat, envelope, now, state);
                self.settle(&held, true).await;
            }
            Decision::Refuse(reason) => {
                self.settle(&held, false).await;
                self.refuse(&provider, reason, state).await
            }
            Decision::Hold => {
                let replaced = state.held.insert(provider, held);
                self.hold(replaced).await;
            }
            Decision::Verify(job) => {
                let replaced = state.held.insert(provider, held);
                self.hold(replaced).await;
                if let Some(deca) = &self.deca {
                    let registry = deca.registry.clone();
                    let verdicts = state.verdicts_tx.clone();
                    state.checks.spawn(async move {
                        let outcome = certgate::verify(registry.as_ref(), &job).await;
                        let _ = verdicts.send((*job, outcome)).await;
                    });
                }
            }
        }
    }

    async fn handle_verdict(
        &mut self,
        job: VerifyJob,
        outcome: Result<u64, VerifyError>,
        state: &mut State,
    ) {
        let Some(deca) = &mut self.deca else { return };
        if let Err(e) = &outcome {
            tracing::info!(provider = %job.provider, error = %e, "provider certificate refused");
        }
        let label = match deca.gate.record(&job, outcome, unix_ms()) {
            Ok(()) => "valid",
            Err(reason) => reason,
        };
        self.metrics.cert_checks.with_label_values(&[label]).inc();
        if let Some(held) = state.held.remove(&job.provider) {
            Box::pin(self.gate_heartbeat(held, state)).await;
        }
    }

    async fn handle_lookup(
        &mut self,
        job: LookupJob,
        outcome: Result<Found, String>,
        state: &mut State,
    ) {
        let Some(stake) = &mut self.stake else { return };
        if let Err(error) = &outcome {
            tracing::debug!(address = %job.address, %error, "stake lookup failed");
        }
        let now = unix_ms();
        stake.gate.record(&job, outcome, now);
        // The slot is free: addresses waiting for one take it.
        for next in stake.gate.next_lookups(now) {
            spawn_lookup(stake, state, next);
        }
        let held = state
            .held_for_stake
            .remove(&job.address)
            .unwrap_or_default();
        for (_, held) in held {
            Box::pin(self.gate_heartbeat(held, state)).await;
        }
    }

    fn admit(&self, heartbeat: &Heartbeat, envelope: String, now: u64, state: &mut State) {
        let provider = heartbeat.offer.provider_peer_id;
        let record = IndexedProvider::with_envelope(heartbeat, envelope, now);
        let (stored, changed) = match self.live.write() {
            Ok(mut live) => {
                let changed = live
                    .get(&provider)
                    .is_none_or(|old| old.offer != heartbeat.offer);
                let stored = live.upsert(LiveEntry::from(record.clone()));
                for evicted in live.take_evicted() {
                    state.pending.remove(&evicted);
                    state.written.remove(&evicted);
                }
                self.metrics.providers_indexed.set(live.len() as i64);
                (stored, changed)
            }
            Err(_) => (false, true),
        };
        if stored {
            let changed = changed || state.pending.get(&provider).is_some_and(|p| p.changed);
            let due = state.written.get(&provider).is_none_or(|&at| {
                now.saturating_sub(at) >= self.touch_interval().as_millis() as u64
            });
            if changed || due || state.pending.contains_key(&provider) {
                state.pending.insert(provider, Pending { record, changed });
            }
        }
        self.metrics
            .heartbeats
            .with_label_values(&["accepted"])
            .inc();
    }

    /// Refuses a heartbeat; a provider that was indexed is dropped at once.
    /// The refusal is announced (metrics, events) only once the provider is
    /// out of the live index, so an observer never sees it still matched.
    async fn refuse(&self, provider: &PeerId, reason: &'static str, state: &mut State) {
        state.pending.remove(provider);
        state.written.remove(provider);
        let was_live = self
            .live
            .write()
            .map(|mut live| live.remove(provider))
            .unwrap_or(false);
        if was_live {
            if let Err(e) = self.index.remove(provider).await {
                tracing::error!(%provider, error = %e, "removing a refused provider");
            }
        }
        self.count_refusal(reason);
    }

    async fn flush(&self, state: &mut State) {
        if state.pending.is_empty() {
            return;
        }
        let (changed, bumps): (Vec<Pending>, Vec<Pending>) = state
            .pending
            .drain()
            .map(|(_, p)| p)
            .partition(|p| p.changed);
        let changed: Vec<IndexedProvider> = changed.into_iter().map(|p| p.record).collect();
        let bumps: Vec<IndexedProvider> = bumps.into_iter().map(|p| p.record).collect();
        let started = Instant::now();
        match self.index.write_batch(&changed, &bumps).await {
            Ok(()) => {
                let now = unix_ms();
                let batch: Vec<&IndexedProvider> = changed.iter().chain(&bumps).collect();
                for record in &batch {
                    state.written.insert(record.offer.provider_peer_id, now);
                }
                self.metrics
                    .index_flush
                    .observe(started.elapsed().as_secs_f64());
                self.metrics.index_rows.inc_by(batch.len() as u64);
                if self.events.receiver_count() > 0 {
                    for record in &batch {
                        let _ = self.events.send(FullnodeEvent::Indexed {
                            provider: record.offer.provider_peer_id,
                            seq: record.seq,
                        });
                    }
                }
            }
            // The providers stay live in memory and are written with their
            // next heartbeat.
            Err(e) => tracing::error!(
                rows = changed.len() + bumps.len(),
                error = %e,
                "writing heartbeats"
            ),
        }
    }

    /// How often an unchanged offer's row is refreshed in SQL.
    fn touch_interval(&self) -> Duration {
        self.expire_after / 3
    }

    async fn expire(&mut self, state: &mut State) {
        let cutoff = unix_ms().saturating_sub(self.expire_after.as_millis() as u64);
        let silent = match self.live.write() {
            Ok(mut live) => {
                let silent = live.expire(cutoff);
                self.metrics.providers_indexed.set(live.len() as i64);
                silent
            }
            Err(_) => Vec::new(),
        };
        for provider in &silent {
            state.written.remove(provider);
            if let Some(deca) = &mut self.deca {
                deca.gate.forget(provider);
            }
        }
        match self.index.expire(cutoff).await {
            Ok(0) => {}
            Ok(count) => {
                tracing::info!(count, "expired silent providers");
                let _ = self.events.send(FullnodeEvent::Expired { count });
            }
            Err(e) => tracing::error!(error = %e, "expiring providers"),
        }
    }
}
