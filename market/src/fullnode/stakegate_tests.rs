use super::*;
use flowshield_proto::{Keypair, Offer, Region, WgPublicKey};

const NOW: u64 = 1_700_000_000_000;
const MIN: u64 = 1_000;

fn address(tag: u8) -> ChainAddress {
    ChainAddress([tag; 20])
}

fn heartbeat(keypair: &Keypair, chain: ChainAddress, wg: u8) -> Heartbeat {
    Heartbeat {
        offer: Offer {
            provider_peer_id: keypair.public().to_peer_id(),
            chain_address: chain,
            wg_public_key: WgPublicKey([wg; 32]),
            endpoint: "192.0.2.10:51820".parse().expect("endpoint"),
            region: Region::new("eu-west").expect("region"),
            price_per_gib_wei: 1,
            price_per_hour_wei: 1,
            capacity_mbps: 10,
            max_clients: 1,
            tunnel_subnet: None,
        },
        seq: 1,
        timestamp_ms: NOW,
    }
}

/// A registered provider staked `stake` for `keypair`'s PeerId and WireGuard key `wg`.
fn staked(keypair: &Keypair, wg: u8, stake: u64) -> ChainProvider {
    ChainProvider {
        registered: true,
        stake: U256::from(stake),
        unbonding: U256::ZERO,
        peer_id_hash: peer_id_hash(&keypair.public().to_peer_id()),
        wg_public_key: [wg; 32],
    }
}

fn found(provider: ChainProvider) -> Result<Found, String> {
    Ok(Found {
        provider,
        min_stake: Some(U256::from(MIN)),
    })
}

fn gate(max_providers: usize, max_running: usize) -> StakeGate {
    StakeGate::new(
        StakePolicy::default(),
        StakeLimits {
            max_providers,
            max_running,
            max_running_per_relay: max_running,
            max_queued: 1,
            max_queued_per_relay: 1,
        },
        None,
    )
}

fn job(decision: Decision) -> LookupJob {
    match decision {
        Decision::Lookup(job) => job,
        other => panic!("expected a lookup, got {other:?}"),
    }
}

/// Looks `heartbeat`'s address up with `outcome` and decides again.
fn decide(gate: &mut StakeGate, heartbeat: &Heartbeat, outcome: Result<Found, String>) -> Decision {
    let job = job(gate.check(heartbeat, NOW));
    assert_eq!(gate.check(heartbeat, NOW), Decision::Hold);
    gate.record(&job, outcome, NOW);
    gate.check(heartbeat, NOW)
}

#[test]
fn each_refusal_reason() {
    let key = Keypair::generate_ed25519();
    let other = Keypair::generate_ed25519();
    let ok = staked(&key, 7, MIN);
    let cases = [
        (
            ChainProvider {
                registered: false,
                ..ok.clone()
            },
            Decision::Refuse("unregistered"),
        ),
        (
            ChainProvider {
                stake: U256::from(MIN - 1),
                ..ok.clone()
            },
            Decision::Refuse("stake_below_minimum"),
        ),
        (
            ChainProvider {
                stake: U256::ZERO,
                unbonding: U256::from(MIN),
                ..ok.clone()
            },
            Decision::Refuse("unbonding"),
        ),
        (staked(&other, 7, MIN), Decision::Refuse("peer_id_mismatch")),
        (staked(&key, 8, MIN), Decision::Refuse("wg_key_mismatch")),
        (ok.clone(), Decision::Accept),
    ];
    for (tag, (facts, expected)) in cases.into_iter().enumerate() {
        let mut gate = gate(10, 4);
        let hb = heartbeat(&key, address(tag as u8), 7);
        assert_eq!(
            decide(&mut gate, &hb, found(facts.clone())),
            expected,
            "{facts:?}"
        );
    }
    let mut gate = gate(10, 4);
    let hb = heartbeat(&key, address(1), 7);
    assert_eq!(
        decide(&mut gate, &hb, Err("connection refused".into())),
        Decision::Refuse("chain_unavailable")
    );
}

#[test]
fn a_stranger_claiming_a_staked_address_is_refused_while_the_owner_is_admitted() {
    let owner = Keypair::generate_ed25519();
    let stranger = Keypair::generate_ed25519();
    let mut gate = gate(10, 4);
    let owned = heartbeat(&owner, address(1), 7);
    assert_eq!(
        decide(&mut gate, &owned, found(staked(&owner, 7, MIN))),
        Decision::Accept
    );
    // Same address, same WireGuard key, another PeerId: answered from
    // the cached record, no lookup.
    let claimed = heartbeat(&stranger, address(1), 7);
    assert_eq!(
        gate.check(&claimed, NOW),
        Decision::Refuse("peer_id_mismatch")
    );
    assert_eq!(gate.sizes(), (1, 0));
}

#[test]
fn records_expire_admitted_later_than_refused() {
    let key = Keypair::generate_ed25519();
    let policy = StakePolicy::default();
    let mut gate = gate(10, 4);
    let admitted = heartbeat(&key, address(1), 7);
    let refused = heartbeat(&key, address(2), 7);
    decide(&mut gate, &admitted, found(staked(&key, 7, MIN)));
    decide(&mut gate, &refused, found(staked(&key, 7, 0)));
    let ms = |d: Duration| d.as_millis() as u64;
    let before_refusal_ttl = NOW + ms(policy.refused_ttl) - 1;
    assert_eq!(gate.check(&admitted, before_refusal_ttl), Decision::Accept);
    assert_eq!(
        gate.check(&refused, before_refusal_ttl),
        Decision::Refuse("stake_below_minimum")
    );
    let after_refusal_ttl = NOW + ms(policy.refused_ttl);
    assert_eq!(gate.check(&admitted, after_refusal_ttl), Decision::Accept);
    // minStake is still fresh: the lookup reads only the record.
    assert_eq!(
        gate.check(&refused, after_refusal_ttl),
        Decision::Lookup(LookupJob {
            address: address(2),
            min_stake: false
        })
    );
    let after_admitted_ttl = NOW + ms(policy.admitted_ttl);
    assert_eq!(
        gate.check(&admitted, after_admitted_ttl),
        Decision::Lookup(LookupJob {
            address: address(1),
            min_stake: true
        })
    );
}

#[test]
fn invalidation_forces_a_lookup_and_discards_an_answer_older_than_the_event() {
    let key = Keypair::generate_ed25519();
    let mut gate = gate(10, 4);
    let hb = heartbeat(&key, address(1), 7);
    assert_eq!(
        decide(&mut gate, &hb, found(staked(&key, 7, MIN))),
        Decision::Accept
    );
    gate.invalidate(&address(1));
    let running = job(gate.check(&hb, NOW + 1));
    // Another event arrives while the lookup runs: its answer is dropped.
    gate.invalidate(&address(1));
    gate.record(&running, found(staked(&key, 7, MIN)), NOW + 2);
    let again = job(gate.check(&hb, NOW + 3));
    let unbonding = ChainProvider {
        stake: U256::ZERO,
        unbonding: U256::from(MIN),
        ..staked(&key, 7, MIN)
    };
    gate.record(&again, found(unbonding), NOW + 4);
    assert_eq!(gate.check(&hb, NOW + 5), Decision::Refuse("unbonding"));
}

#[test]
fn records_are_bounded_and_evict_the_least_recent() {
    let key = Keypair::generate_ed25519();
    let mut gate = gate(3, 64);
    for tag in 0..5 {
        let hb = heartbeat(&key, address(tag), 7);
        decide(&mut gate, &hb, found(staked(&key, 7, MIN)));
    }
    assert_eq!(gate.sizes(), (3, 0));
    assert_eq!(gate.evictions(), 2);
    assert!(matches!(
        gate.check(&heartbeat(&key, address(0), 7), NOW),
        Decision::Lookup(_)
    ));
    assert_eq!(
        gate.check(&heartbeat(&key, address(4), 7), NOW),
        Decision::Accept
    );
}

#[test]
fn lookups_are_capped_and_expired_records_stand_meanwhile() {
    let key = Keypair::generate_ed25519();
    let mut gate = gate(100, 1);
    let known = heartbeat(&key, address(1), 7);
    decide(&mut gate, &known, found(staked(&key, 7, MIN)));

    let newcomer = heartbeat(&key, address(2), 7);
    let running = job(gate.check(&newcomer, NOW));
    // The next newcomer waits for the slot; the queue (one) is then full.
    let waiting = heartbeat(&key, address(3), 7);
    assert_eq!(gate.check(&waiting, NOW), Decision::Hold);
    assert_eq!(gate.check(&waiting, NOW), Decision::Hold);
    assert_eq!(gate.queued(), 1);
    assert_eq!(
        gate.check(&heartbeat(&key, address(4), 7), NOW),
        Decision::Refuse("chain_checks_busy")
    );
    let later = NOW + StakePolicy::default().admitted_ttl.as_millis() as u64;
    assert_eq!(gate.check(&known, later), Decision::Accept);
    assert!(gate.next_lookups(NOW).is_empty(), "no slot free yet");
    gate.record(&running, Err("timeout".into()), NOW);
    let next = gate.next_lookups(NOW);
    assert_eq!(
        next.iter().map(|j| j.address).collect::<Vec<_>>(),
        [address(3)]
    );
    assert_eq!((gate.queued(), gate.sizes().1), (0, 1));
    assert_eq!(gate.check(&waiting, NOW), Decision::Hold);
    gate.record(&next[0], found(staked(&key, 7, MIN)), NOW);
    assert_eq!(gate.check(&waiting, NOW), Decision::Accept);
    assert!(matches!(
        gate.check(&heartbeat(&key, address(4), 7), NOW),
        Decision::Lookup(_)
    ));
}

/// Heartbeats reach the gate in bursts (a signature batch at a time): a
/// burst of newcomers beyond the lookup slots waits for them in order,
/// within the queue's bounds, and a relay at its share of the slots does
/// not hold up addresses other relays queued.
#[test]
fn a_burst_of_newcomers_waits_for_lookup_slots_within_bounds() {
    let limits = StakeLimits::default();
    let mut gate = StakeGate::new(StakePolicy::default(), limits, None);
    let key = Keypair::generate_ed25519();
    let relay = Keypair::generate_ed25519().public().to_peer_id();
    let other = Keypair::generate_ed25519().public().to_peer_id();
    let newcomer = |n: u32| {
        let mut hb = heartbeat(&key, address(0), 7);
        hb.offer.chain_address.0[..4].copy_from_slice(&n.to_be_bytes());
        hb
    };
    let burst = limits.max_running_per_relay + limits.max_queued_per_relay + 10;
    let mut decisions: Vec<Decision> = (0..burst as u32)
        .map(|n| gate.check_via(&newcomer(n), relay, NOW))
        .collect();
    let busy = decisions
        .iter()
        .filter(|d| **d == Decision::Refuse("chain_checks_busy"))
        .count();
    let held = decisions.iter().filter(|d| **d == Decision::Hold).count();
    assert_eq!(busy, 10);
    assert_eq!(held, limits.max_queued_per_relay);
    assert_eq!(gate.queued(), limits.max_queued_per_relay);
    // Another relay's newcomer starts at once (global slots are free); at
    // its own share it queues behind the first relay's addresses.
    for n in 0..limits.max_running_per_relay as u32 {
        assert!(matches!(
            gate.check_via(&newcomer(100_000 + n), other, NOW),
            Decision::Lookup(_)
        ));
    }
    assert_eq!(
        gate.check_via(&newcomer(200_000), other, NOW),
        Decision::Hold
    );
    // The first relay's share is taken: its next newcomer is refused (its
    // queue is full).
    assert_eq!(
        gate.check_via(&newcomer(300_000), relay, NOW),
        Decision::Refuse("chain_checks_busy")
    );
    // One of the other relay's lookups ends: its queued address goes
    // first, ahead of the first relay's (whose share is still taken).
    let other_job = LookupJob {
        address: newcomer(100_000).offer.chain_address,
        min_stake: false,
    };
    gate.record(&other_job, found(staked(&key, 7, MIN)), NOW);
    let next = gate.next_lookups(NOW);
    assert_eq!(
        next.iter().map(|j| j.address).collect::<Vec<_>>(),
        [newcomer(200_000).offer.chain_address]
    );
    // The first relay's lookups end one by one: its queue drains in
    // arrival order, one new lookup per finished one.
    let first: Vec<LookupJob> = decisions
        .drain(..)
        .filter_map(|d| match d {
            Decision::Lookup(job) => Some(job),
            _ => None,
        })
        .collect();
    assert_eq!(first.len(), limits.max_running_per_relay);
    for (i, job) in first.iter().enumerate() {
        gate.record(job, found(staked(&key, 7, MIN)), NOW);
        let next = gate.next_lookups(NOW);
        let expected = newcomer((limits.max_running_per_relay + i) as u32);
        assert_eq!(
            next.iter().map(|j| j.address).collect::<Vec<_>>(),
            [expected.offer.chain_address]
        );
    }
    assert_eq!(
        gate.queued(),
        limits.max_queued_per_relay - limits.max_running_per_relay
    );
}

#[test]
fn a_chain_outage_keeps_known_verdicts_and_retries_unknown_addresses() {
    let key = Keypair::generate_ed25519();
    let policy = StakePolicy::default();
    let mut gate = gate(10, 4);
    let known = heartbeat(&key, address(1), 7);
    decide(&mut gate, &known, found(staked(&key, 7, MIN)));
    let expired = NOW + policy.admitted_ttl.as_millis() as u64;
    let refresh = job(gate.check(&known, expired));
    gate.record(&refresh, Err("timeout".into()), expired);
    assert_eq!(gate.check(&known, expired), Decision::Accept);

    let unknown = heartbeat(&key, address(2), 7);
    assert_eq!(
        decide(&mut gate, &unknown, Err("timeout".into())),
        Decision::Refuse("chain_unavailable")
    );
    let retry = NOW + policy.unavailable_ttl.as_millis() as u64;
    assert!(matches!(gate.check(&unknown, retry), Decision::Lookup(_)));
}

#[test]
fn each_verdict_is_logged_once_per_provider() {
    let key = Keypair::generate_ed25519().public().to_peer_id();
    let mut gate = gate(10, 4);
    assert!(gate.first_verdict(key, "unregistered"));
    assert!(!gate.first_verdict(key, "unregistered"));
    assert!(gate.first_verdict(key, "accepted"));
    assert!(gate.first_verdict(key, "unregistered"));
}

/// The attack: one relay gossips heartbeats claiming fresh, never
/// registered addresses faster than the chain answers, so every lookup
/// slot is always taken by its addresses and a registered provider heard
/// through another peer is refused as `chain_checks_busy` forever.
#[test]
fn a_relay_flooding_unregistered_addresses_cannot_take_every_lookup_slot() {
    let mut gate = StakeGate::new(StakePolicy::default(), StakeLimits::default(), None);
    let flooder = Keypair::generate_ed25519().public().to_peer_id();
    let sybil = Keypair::generate_ed25519();
    let real = Keypair::generate_ed25519();
    let real_hb = heartbeat(&real, address(0xee), 7);
    let real_id = real.public().to_peer_id();
    let mut started = Vec::new();
    // Round after round the flood refills every slot the chain frees
    // before the real provider's next heartbeat arrives.
    for round in 0u32..4 {
        for i in 0u32..200 {
            let mut fake = heartbeat(&sybil, address(0), 7);
            let n = round * 1_000 + i;
            fake.offer.chain_address.0[..4].copy_from_slice(&n.to_be_bytes());
            if let Decision::Lookup(job) = gate.check_via(&fake, flooder, NOW) {
                started.push(job);
            }
        }
        let share = StakeLimits::default().max_running_per_relay;
        assert!(
            gate.sizes().1 <= share,
            "round {round}: {} lookups running for one relay, share {share}",
            gate.sizes().1
        );
        let decision = gate.check_via(&real_hb, real_id, NOW);
        assert!(
            matches!(decision, Decision::Lookup(_)),
            "round {round}: the real provider got {decision:?}, {} lookups running for the flooder",
            gate.sizes().1
        );
        let Decision::Lookup(real_job) = decision else {
            unreachable!()
        };
        gate.record(&real_job, found(staked(&real, 7, MIN)), NOW);
        assert_eq!(gate.check_via(&real_hb, real_id, NOW), Decision::Accept);
        gate.invalidate(&real_hb.offer.chain_address);
        // The chain answers half of the flooder's lookups: unregistered.
        let half = started.len() / 2;
        for job in started.drain(..half) {
            gate.record(
                &job,
                found(ChainProvider {
                    registered: false,
                    ..staked(&sybil, 7, 0)
                }),
                NOW,
            );
        }
    }
}

/// The attack on the lookup queue: a flooder at its share of the lookups
/// claims a real provider's (not yet looked up) address, which queues it
/// behind the flooder's own addresses; the real provider's heartbeat,
/// through a relay with room, must start the lookup at once rather than
/// wait there.
#[test]
fn an_address_a_flooder_queued_is_looked_up_at_once_through_a_relay_with_room() {
    let limits = StakeLimits::default();
    let mut gate = StakeGate::new(StakePolicy::default(), limits, None);
    let flooder = Keypair::generate_ed25519().public().to_peer_id();
    let sybil = Keypair::generate_ed25519();
    for n in 0..(limits.max_running_per_relay + 100) as u32 {
        let mut fake = heartbeat(&sybil, address(0), 7);
        fake.offer.chain_address.0[..4].copy_from_slice(&n.to_be_bytes());
        gate.check_via(&fake, flooder, NOW);
    }
    let real = Keypair::generate_ed25519();
    let real_hb = heartbeat(&real, address(0xee), 7);
    let impostor = heartbeat(&sybil, address(0xee), 7);
    assert_eq!(gate.check_via(&impostor, flooder, NOW), Decision::Hold);
    let queued = gate.queued();
    let decision = gate.check_via(&real_hb, real.public().to_peer_id(), NOW);
    assert!(
        matches!(decision, Decision::Lookup(job) if job.address == address(0xee)),
        "the real provider got {decision:?}"
    );
    assert_eq!(gate.queued(), queued - 1, "taken off the queue");
    assert_eq!(gate.check_via(&impostor, flooder, NOW), Decision::Hold);
}
