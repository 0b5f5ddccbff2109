//! Stake admission of providers: a heartbeat is indexed only if the chain
//! vouches for it.
//!
//! What the chain must say about the heartbeat's `chain_address`
//! (`BandwidthMarket.getProvider`): registered; stake at least `minStake`
//! (below it with stake unbonding is `unbonding`, the provider is leaving);
//! `peerIdHash` equal to [`peer_id_hash`] of the PeerId that signed the
//! heartbeat (only the chain key decides which PeerId speaks for an
//! address, so a stranger cannot claim a reputable provider's address);
//! `wgPublicKey` equal to the offer's (clients would otherwise tunnel to a
//! key the provider never staked).
//!
//! Sans-IO, like [`super::certgate`]: [`StakeGate::check`] answers from a
//! cache of chain records keyed by address, or asks the fullnode to run a
//! [`LookupJob`] ([`lookup`]) and hold the heartbeat until
//! [`StakeGate::record`] has the answer. Records expire: one that admits
//! after `admitted_ttl`, one that refuses sooner (`refused_ttl`), so a
//! provider that registers is heard within seconds. Contract events
//! ([`super::chainwatch`]) [`StakeGate::invalidate`] an address at once.
//!
//! A chain that is down or slow does not stall ingest: lookups run beside
//! the loop with a timeout; a provider with a record keeps its verdict
//! while the chain does not answer; one without is refused as
//! `chain_unavailable` for `unavailable_ttl`, then asked about again.
//!
//! Bounded under floods ([`StakeLimits`]): records for at most
//! `max_providers` addresses, the least recently heard evicted first; at
//! most `max_running` lookups at once, and at most `max_running_per_relay`
//! of them started by heartbeats one gossip peer relayed (so one peer
//! gossiping fresh unregistered addresses faster than the chain answers
//! cannot starve providers heard through other peers). An address without
//! a record that finds no free slot waits for one, first come first
//! served, in a queue of at most `max_queued` addresses, `max_queued_per_relay`
//! of them per relay (heartbeats reach the gate in bursts of a signature
//! batch, and a burst of newcomers would otherwise be refused until their
//! next heartbeats); beyond the queue it is refused as `chain_checks_busy`.
//! A queued address whose heartbeat comes through a relay with room is
//! looked up at once (a flooder claiming a real provider's address must
//! not park it behind its own).
//! An expired record stands while its address finds no slot.

use crate::net::MapGauges;
use flowshield_chain::alloy::primitives::{Address, B256, U256};
use flowshield_chain::{MarketClient, ProviderRecord};
use flowshield_proto::{peer_id_hash, ChainAddress, Heartbeat, PeerId};
use lru::LruCache;
use std::collections::{HashMap, HashSet, VecDeque};
use std::num::NonZeroUsize;
use std::time::Duration;

/// Every refusal label the gate can give (a `flowshield_heartbeats_total`
/// result), for pre-registering metric series.
pub const REFUSAL_REASONS: [&str; 7] = [
    "unregistered",
    "stake_below_minimum",
    "unbonding",
    "peer_id_mismatch",
    "wg_key_mismatch",
    "chain_unavailable",
    "chain_checks_busy",
];

/// Whether `reason` says the chain did not answer (in time), rather than
/// what it answered: such a refusal does not drop a live provider.
pub fn is_transient(reason: &str) -> bool {
    matches!(reason, "chain_unavailable" | "chain_checks_busy")
}

/// How long chain answers are trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StakePolicy {
    /// A record that admits (registered, staked). Long: every change to a
    /// provider's record emits an event that invalidates it within a poll
    /// ([`super::chainwatch`]), and `minStake` (re-read after
    /// `min_stake_ttl`) is applied to cached records at every heartbeat,
    /// so this only bounds how long a missed event could go unnoticed.
    pub admitted_ttl: Duration,
    /// A record that refuses (so a provider that registers is heard soon).
    pub refused_ttl: Duration,
    /// No answer from the chain: how long until it is asked again.
    pub unavailable_ttl: Duration,
    /// How long `minStake` is trusted.
    pub min_stake_ttl: Duration,
    /// The longest a lookup may take before it counts as unavailable.
    pub lookup_timeout: Duration,
}

impl Default for StakePolicy {
    fn default() -> Self {
        Self {
            admitted_ttl: Duration::from_secs(600),
            refused_ttl: Duration::from_secs(10),
            unavailable_ttl: Duration::from_secs(5),
            min_stake_ttl: Duration::from_secs(60),
            lookup_timeout: Duration::from_secs(5),
        }
    }
}

/// How much chain state a fullnode keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StakeLimits {
    /// Addresses whose record is kept.
    pub max_providers: usize,
    /// Lookups running on chain at once.
    pub max_running: usize,
    /// Of those, lookups started by heartbeats one gossip peer relayed: a
    /// peer relaying a flood of unregistered addresses fills its share,
    /// not every slot, so providers heard through other peers are still
    /// looked up.
    pub max_running_per_relay: usize,
    /// Addresses waiting for a lookup slot.
    pub max_queued: usize,
    /// Of those, addresses one gossip peer relayed.
    pub max_queued_per_relay: usize,
}

impl Default for StakeLimits {
    fn default() -> Self {
        Self {
            max_providers: 100_000,
            max_running: 64,
            max_running_per_relay: 16,
            max_queued: 2048,
            max_queued_per_relay: 512,
        }
    }
}

/// Where the gate reports the size and evictions of its maps.
#[derive(Debug, Clone)]
pub struct StakeGauges {
    pub records: MapGauges,
    pub running: MapGauges,
    pub queued: MapGauges,
}

/// What the chain says about one address (`getProvider`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainProvider {
    pub registered: bool,
    pub stake: U256,
    pub unbonding: U256,
    pub peer_id_hash: B256,
    pub wg_public_key: [u8; 32],
}

impl From<&ProviderRecord> for ChainProvider {
    fn from(record: &ProviderRecord) -> Self {
        Self {
            registered: record.registered,
            stake: record.stake,
            unbonding: record.unbonding,
            peer_id_hash: record.peerIdHash,
            wg_public_key: record.wgPublicKey.0,
        }
    }
}

/// What to do with a heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Accept,
    /// Refuse, for this reason (a metrics label).
    Refuse(&'static str),
    /// Hold it: a lookup of this address is running.
    Hold,
    /// Hold it and run [`lookup`].
    Lookup(LookupJob),
}

/// A chain lookup to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupJob {
    pub address: ChainAddress,
    /// Also read `getParams().minStake` (none known, or it expired).
    pub min_stake: bool,
}

/// What a lookup found: the record, and `minStake` when asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub provider: ChainProvider,
    pub min_stake: Option<U256>,
}

#[derive(Debug, Clone)]
struct Entry {
    /// `None`: the chain never answered about this address.
    facts: Option<ChainProvider>,
    /// Unix ms after which the chain is asked again.
    expires_ms: u64,
}

/// The chain records of the providers heard from most recently (sans-IO;
/// the caller passes the time).
#[derive(Debug)]
pub struct StakeGate {
    policy: StakePolicy,
    limits: StakeLimits,
    records: LruCache<ChainAddress, Entry>,
    evictions: u64,
    /// `minStake` and when it expires.
    min_stake: Option<(U256, u64)>,
    /// Lookups running, each with the gossip peer whose heartbeat
    /// started it.
    running: HashMap<ChainAddress, PeerId>,
    /// Lookups running per relay (only relays with one running).
    per_relay: HashMap<PeerId, usize>,
    /// Addresses waiting for a lookup slot, oldest first, each with the
    /// gossip peer whose heartbeat queued it.
    queue: VecDeque<(ChainAddress, PeerId)>,
    /// The same addresses, for lookups by address.
    queued: HashSet<ChainAddress>,
    /// Addresses queued per relay (only relays with one queued).
    queued_per_relay: HashMap<PeerId, usize>,
    /// Running lookups whose answer may predate an event about them.
    stale: HashSet<ChainAddress>,
    /// The last verdict logged per provider (to log each change once).
    logged: LruCache<PeerId, &'static str>,
    gauges: Option<StakeGauges>,
}

impl StakeGate {
    pub fn new(policy: StakePolicy, limits: StakeLimits, gauges: Option<StakeGauges>) -> Self {
        let cap = NonZeroUsize::new(limits.max_providers).unwrap_or(NonZeroUsize::MIN);
        Self {
            policy,
            limits,
            records: LruCache::new(cap),
            evictions: 0,
            min_stake: None,
            running: HashMap::new(),
            per_relay: HashMap::new(),
            queue: VecDeque::new(),
            queued: HashSet::new(),
            queued_per_relay: HashMap::new(),
            stale: HashSet::new(),
            logged: LruCache::new(cap),
            gauges,
        }
    }

    /// Addresses with a kept record, lookups running.
    pub fn sizes(&self) -> (usize, usize) {
        (self.records.len(), self.running.len())
    }

    /// Addresses waiting for a lookup slot.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Records evicted to make room so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    fn report(&self) {
        if let Some(g) = &self.gauges {
            g.records.observe(self.records.len(), self.evictions);
            g.running.observe(self.running.len(), 0);
            g.queued.observe(self.queue.len(), 0);
        }
    }

    /// Decides about a verified heartbeat its author sent us itself, at
    /// `now_ms` ([`Self::check_via`] with the author as relay).
    pub fn check(&mut self, heartbeat: &Heartbeat, now_ms: u64) -> Decision {
        self.check_via(heartbeat, heartbeat.offer.provider_peer_id, now_ms)
    }

    /// Decides about a verified heartbeat gossip peer `via` relayed, at
    /// `now_ms`. A lookup it needs counts against `via`'s share of the
    /// running lookups.
    pub fn check_via(&mut self, heartbeat: &Heartbeat, via: PeerId, now_ms: u64) -> Decision {
        let address = heartbeat.offer.chain_address;
        let min_stake = self.min_stake.map(|(value, _)| value);
        let min_due = self.min_stake.is_none_or(|(_, expires)| now_ms >= expires);
        // `get` marks the address as recently heard.
        let cached = self
            .records
            .get(&address)
            .map(|entry| (entry.facts.clone(), now_ms < entry.expires_ms));
        let judge = |facts: &Option<ChainProvider>| match (facts, min_stake) {
            (Some(facts), Some(min)) => verdict(facts, min, heartbeat),
            _ => Err("chain_unavailable"),
        };
        let decided = |result: Result<(), &'static str>| match result {
            Ok(()) => Decision::Accept,
            Err(reason) => Decision::Refuse(reason),
        };
        let no_room = !self.has_room(&via);
        match cached {
            Some((facts, true)) => return decided(judge(&facts)),
            _ if self.running.contains_key(&address) => return Decision::Hold,
            // Queued by another relay's heartbeat (a flooder at its share may
            // have queued a real provider's address by claiming it): a relay
            // with room looks it up now instead of waiting behind it.
            _ if self.queued.contains(&address) && no_room => return Decision::Hold,
            // No room for another lookup (for this relay): an expired
            // record stands until there is.
            Some((facts, false)) if no_room => return decided(judge(&facts)),
            None if no_room => {
                return match self.enqueue(address, via) {
                    true => Decision::Hold,
                    false => Decision::Refuse("chain_checks_busy"),
                }
            }
            _ => {}
        }
        self.unqueue(&address);
        Decision::Lookup(self.start(address, via, min_due))
    }

    /// Takes `address` off the queue, if it is there.
    fn unqueue(&mut self, address: &ChainAddress) {
        if !self.queued.remove(address) {
            return;
        }
        if let Some(at) = self.queue.iter().position(|(a, _)| a == address) {
            if let Some((_, via)) = self.queue.remove(at) {
                release(&mut self.queued_per_relay, &via);
            }
        }
    }

    /// Whether a lookup for a heartbeat `via` relayed may start now.
    fn has_room(&self, via: &PeerId) -> bool {
        let relay_running = self.per_relay.get(via).copied().unwrap_or(0);
        self.running.len() < self.limits.max_running
            && relay_running < self.limits.max_running_per_relay
    }

    fn start(&mut self, address: ChainAddress, via: PeerId, min_stake: bool) -> LookupJob {
        self.running.insert(address, via);
        *self.per_relay.entry(via).or_default() += 1;
        self.report();
        LookupJob { address, min_stake }
    }

    /// Queues `address` for a lookup slot; false when the queue (or
    /// `via`'s share of it) is full.
    fn enqueue(&mut self, address: ChainAddress, via: PeerId) -> bool {
        let relay_queued = self.queued_per_relay.get(&via).copied().unwrap_or(0);
        // With no slot at all nothing would ever take it off the queue.
        let slots = self.limits.max_running > 0 && self.limits.max_running_per_relay > 0;
        if !slots
            || self.queue.len() >= self.limits.max_queued
            || relay_queued >= self.limits.max_queued_per_relay
        {
            return false;
        }
        self.queue.push_back((address, via));
        self.queued.insert(address);
        *self.queued_per_relay.entry(via).or_default() += 1;
        self.report();
        true
    }

    /// The lookups to start from the queue now that slots are free (after
    /// [`Self::record`]), oldest first, skipping relays whose share of the
    /// running lookups is taken. The caller runs each and holds on to the
    /// heartbeats it held for their addresses.
    pub fn next_lookups(&mut self, now_ms: u64) -> Vec<LookupJob> {
        let min_due = self.min_stake.is_none_or(|(_, expires)| now_ms >= expires);
        let mut jobs = Vec::new();
        let mut i = 0;
        while i < self.queue.len() && self.running.len() < self.limits.max_running {
            let (address, via) = self.queue[i];
            if !self.has_room(&via) {
                i += 1;
                continue;
            }
            self.unqueue(&address);
            jobs.push(self.start(address, via, min_due));
        }
        self.report();
        jobs
    }

    /// Records the outcome of a [`LookupJob`] finished at `now_ms`. The
    /// caller then checks the heartbeats it held for that address again.
    pub fn record(&mut self, job: &LookupJob, outcome: Result<Found, String>, now_ms: u64) {
        if let Some(via) = self.running.remove(&job.address) {
            release(&mut self.per_relay, &via);
        }
        if self.stale.remove(&job.address) {
            // An event changed this address while the lookup ran: the
            // answer may be older than the change, so ask again.
            self.report();
            return;
        }
        let ms = |d: Duration| d.as_millis() as u64;
        let entry = match outcome {
            Ok(found) => {
                if let Some(min) = found.min_stake {
                    self.min_stake = Some((min, now_ms + ms(self.policy.min_stake_ttl)));
                }
                let admits = self.min_stake.is_some_and(|(min, _)| {
                    found.provider.registered && found.provider.stake >= min
                });
                let ttl = if admits {
                    self.policy.admitted_ttl
                } else {
                    self.policy.refused_ttl
                };
                Entry {
                    facts: Some(found.provider),
                    expires_ms: now_ms + ms(ttl),
                }
            }
            // Keep what was known; ask again after `unavailable_ttl`.
            Err(_) => Entry {
                facts: self
                    .records
                    .peek(&job.address)
                    .and_then(|e| e.facts.clone()),
                expires_ms: now_ms + ms(self.policy.unavailable_ttl),
            },
        };
        if let Some((evicted, _)) = self.records.push(job.address, entry) {
            if evicted != job.address {
                self.evictions += 1;
            }
        }
        self.report();
    }

    /// Forgets what is known about `address` (a contract event named it):
    /// its next heartbeat is looked up again.
    pub fn invalidate(&mut self, address: &ChainAddress) {
        self.records.pop(address);
        if self.running.contains_key(address) {
            self.stale.insert(*address);
        }
        self.report();
    }

    /// Whether `verdict` is new for `provider` (to log each change once).
    pub fn first_verdict(&mut self, provider: PeerId, verdict: &'static str) -> bool {
        self.logged.put(provider, verdict) != Some(verdict)
    }
}

/// Takes one off `via`'s count, forgetting relays that reach none (the
/// per-relay counts hold only relays with something counted).
fn release(counts: &mut HashMap<PeerId, usize>, via: &PeerId) {
    if let Some(count) = counts.get_mut(via) {
        *count -= 1;
        if *count == 0 {
            counts.remove(via);
        }
    }
}

/// Whether the chain's record admits `heartbeat`, or why not.
pub fn verdict(
    facts: &ChainProvider,
    min_stake: U256,
    heartbeat: &Heartbeat,
) -> Result<(), &'static str> {
    let offer = &heartbeat.offer;
    if !facts.registered {
        Err("unregistered")
    } else if facts.stake < min_stake {
        Err(if facts.unbonding > U256::ZERO {
            "unbonding"
        } else {
            "stake_below_minimum"
        })
    } else if facts.peer_id_hash != peer_id_hash(&offer.provider_peer_id) {
        Err("peer_id_mismatch")
    } else if facts.wg_public_key != offer.wg_public_key.0 {
        Err("wg_key_mismatch")
    } else {
        Ok(())
    }
}

/// Runs a [`LookupJob`] against the market contract, within `timeout`.
pub async fn lookup(
    market: &MarketClient,
    job: LookupJob,
    timeout: Duration,
) -> Result<Found, String> {
    let address = Address::from(job.address.0);
    let ask = async {
        let record = market
            .provider_record(address)
            .await
            .map_err(|e| e.to_string())?;
        let min_stake = match job.min_stake {
            true => Some(market.params().await.map_err(|e| e.to_string())?.min_stake),
            false => None,
        };
        Ok(Found {
            provider: ChainProvider::from(&record),
            min_stake,
        })
    };
    tokio::time::timeout(timeout, ask)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

#[cfg(test)]
#[path = "stakegate_tests.rs"]
mod tests;
