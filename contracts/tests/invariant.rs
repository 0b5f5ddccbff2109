//! Randomized invariant test: random sequences of market operations by several actors;
//! after every step the contract's balance must equal the sum of what it owes, summed
//! record by record (every provider's stake + unbonding, every open order's unredeemed
//! escrow, every account's claimable credit, every verifier's stake + unbonding, every
//! report bond still held, every reward and client slash share not yet credited), and
//! the contract's own counters must agree. Verifiers stake, report pass/fail, periods are
//! finalized after their challenge windows (slashing when the quorum fails a provider),
//! and bonds, rewards and client shares are claimed.
//!
//! Reproduce a run with `FLOWSHIELD_INVARIANT_SEED=<seed>`; steps with
//! `FLOWSHIELD_INVARIANT_STEPS` (default 250).

mod common;

use std::collections::BTreeMap;

use common::{meth, terms, Actor, Fixture};
use flowshield_chain::alloy::primitives::{Address, B256, U256};
use flowshield_chain::voucher::Report;
use flowshield_chain::{ChainError, MarketParams, OrderStatus};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// A revert is an acceptable outcome of a random operation; anything else is a bug.
fn outcome<T>(
    op: &str,
    r: Result<T, ChainError>,
    stats: &mut BTreeMap<String, (u32, u32)>,
) -> bool {
    let entry = stats.entry(op.to_string()).or_default();
    match r {
        Ok(_) => {
            entry.0 += 1;
            true
        }
        Err(ChainError::Reverted { .. }) => {
            entry.1 += 1;
            false
        }
        Err(e) => panic!("{op}: unexpected non-revert error: {e}"),
    }
}

struct World {
    fx: Fixture,
    providers: Vec<Actor>,
    clients: Vec<Actor>,
    verifiers: Vec<Actor>,
    orders: Vec<U256>,
    /// Every accepted report `(verifier, provider, period)` → `(passed, claimed)`.
    reports: BTreeMap<(Address, Address, u64), (bool, bool)>,
    slashes: u64,
}

impl World {
    fn everyone(&self) -> impl Iterator<Item = &Actor> {
        self.providers
            .iter()
            .chain(&self.clients)
            .chain(&self.verifiers)
    }

    /// Sum of obligations, record by record, compared with the balance and the counters.
    /// Returns the ids of the orders still open (pending, active or closing) and of
    /// those accepted (active or closing).
    async fn check_invariant(&self, step: usize, seed: u64) -> (Vec<U256>, Vec<U256>) {
        let mut open = Vec::new();
        let mut accepted = Vec::new();
        let m = &self.fx.owner.market;
        let mut stakes = U256::ZERO;
        for p in &self.providers {
            let rec = m.provider_record(p.addr()).await.expect("provider");
            stakes += rec.stake + rec.unbonding;
        }
        let mut escrow = U256::ZERO;
        for id in &self.orders {
            let o = m.order(*id).await.expect("order");
            let status = OrderStatus::from_u8(o.status).expect("status");
            match status {
                OrderStatus::Pending | OrderStatus::Active | OrderStatus::Closing => {
                    escrow += o.escrow - o.redeemed;
                    open.push(*id);
                    if status != OrderStatus::Pending {
                        accepted.push(*id);
                    }
                }
                _ => {}
            }
            assert!(
                o.redeemed <= o.escrow,
                "step {step} seed {seed}: order {id} overpaid"
            );
        }
        let mut claim = U256::ZERO;
        for a in self.everyone() {
            claim += m.claimable(a.addr()).await.expect("claimable");
        }
        let mut vstakes = U256::ZERO;
        for v in &self.verifiers {
            let rec = m.verifier_record(v.addr()).await.expect("verifier");
            vstakes += rec.stake + rec.unbonding;
        }
        // Bonds still held and rewards still owed, report by report.
        let (mut bonds, mut owed) = (U256::ZERO, U256::ZERO);
        for ((_, provider, period), (passed, claimed)) in &self.reports {
            if *claimed {
                continue;
            }
            let t = m.tally(*provider, *period).await.expect("tally");
            if !t.finalized {
                bonds += t.bond;
            } else if t.neutral || *passed != t.failed {
                // Right (or uncontradicted): bond and reward still to be claimed.
                bonds += t.bond;
                owed += t.rewardPerRight;
            }
        }
        for id in &self.orders {
            owed += m.pending_slash_share(*id).await.expect("pending share");
        }
        let (tv, tb, tp) = m.verifier_totals().await.expect("verifier totals");
        assert_eq!(
            (tv, tb),
            (vstakes, bonds),
            "step {step} seed {seed}: verifier stake / bonds drifted"
        );
        // Escrow-weighted shares round down: at most a wei per order and slash stays behind.
        let dust = U256::from(self.orders.len() as u64 + self.slashes + 1);
        assert!(
            owed <= tp && tp - owed <= dust,
            "step {step} seed {seed}: slash pool {tp} vs owed {owed}"
        );
        let balance = self.fx.balance(m.address()).await;
        assert_eq!(
            balance,
            stakes + escrow + claim + vstakes + bonds + tp,
            "step {step} seed {seed}: balance != stakes {stakes} + escrow {escrow} + claimable {claim} + verifier stakes {vstakes} + bonds {bonds} + pool {tp}"
        );
        assert_eq!(
            balance,
            m.total_obligations().await.expect("obligations"),
            "step {step} seed {seed}: totalObligations != balance"
        );
        let (ts, te, tc) = m.totals().await.expect("totals");
        assert_eq!(
            (ts, te, tc),
            (stakes, escrow, claim),
            "step {step} seed {seed}: counters drifted"
        );
        (open, accepted)
    }
}

#[tokio::test]
async fn random_operations_preserve_solvency() {
    let seed = env_u64("FLOWSHIELD_INVARIANT_SEED").unwrap_or_else(rand::random);
    let steps = env_u64("FLOWSHIELD_INVARIANT_STEPS").unwrap_or(250) as usize;
    println!("invariant test seed = {seed} (FLOWSHIELD_INVARIANT_SEED={seed} to reproduce), steps = {steps}");
    let mut rng = StdRng::seed_from_u64(seed);

    let params = MarketParams {
        unstake_delay: 300,
        accept_timeout: 120,
        close_grace: 120,
        report_period: 600,
        challenge_window: 300,
        verifier_unbond_delay: 300,
        min_reporters: 3,
        slash_bps: 2_500,
        verifier_share_bps: 3_000,
        ..MarketParams::default()
    };
    let fx = Fixture::new(params).await;
    let mut world = World {
        providers: vec![fx.actor().await, fx.actor().await, fx.actor().await],
        clients: vec![fx.actor().await, fx.actor().await, fx.actor().await],
        verifiers: vec![
            fx.actor().await,
            fx.actor().await,
            fx.actor().await,
            fx.actor().await,
            fx.actor().await,
        ],
        orders: Vec::new(),
        reports: BTreeMap::new(),
        slashes: 0,
        fx,
    };
    for v in &world.verifiers {
        world.fx.admit_verifier(v).await;
    }
    for (i, p) in world.providers[..2].iter().enumerate() {
        p.market
            .register(meth(1_500), &terms(i as u8 + 1))
            .await
            .expect("register provider");
    }
    let mut stats: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let mut open_orders: Vec<U256> = Vec::new();
    let mut accepted_orders: Vec<U256> = Vec::new();

    for step in 0..steps {
        let pi = rng.gen_range(0..world.providers.len());
        let ci = rng.gen_range(0..world.clients.len());
        let p = &world.providers[pi];
        let c = &world.clients[ci];
        let op = rng.gen_range(0..33);
        // Mostly pick an open (for redemption: accepted) order so that order operations
        // are often valid.
        let pool = if matches!(op, 11 | 12) && !accepted_orders.is_empty() && rng.gen_bool(0.85) {
            &accepted_orders
        } else if !open_orders.is_empty() && rng.gen_bool(0.85) {
            &open_orders
        } else {
            &world.orders
        };
        let order = if pool.is_empty() {
            None
        } else {
            Some(pool[rng.gen_range(0..pool.len())])
        };
        let order_rec = match order {
            Some(id) => Some(world.fx.owner.market.order(id).await.expect("order")),
            None => None,
        };
        // The order's own client / provider, so that most order operations are valid.
        let owner_of = |addr: Address| world.everyone().find(|a| a.addr() == addr);
        match op {
            0 => {
                let stake = meth(rng.gen_range(500..3_000));
                outcome(
                    "register",
                    p.market.register(stake, &terms(pi as u8 + 1)).await,
                    &mut stats,
                );
            }
            1 => {
                outcome(
                    "addStake",
                    p.market.add_stake(meth(rng.gen_range(0..1_000))).await,
                    &mut stats,
                );
            }
            2 => {
                let amt = meth(rng.gen_range(1..2_500));
                outcome(
                    "requestUnstake",
                    p.market.request_unstake(amt).await,
                    &mut stats,
                );
            }
            3 => {
                outcome("withdrawStake", p.market.withdraw_stake().await, &mut stats);
            }
            4 | 5 => {
                let escrow = meth(rng.gen_range(1..1_000));
                if let Some((id, _)) = outcome_val(
                    "openOrder",
                    c.market.open_order(p.addr(), escrow).await,
                    &mut stats,
                ) {
                    world.orders.push(id);
                }
            }
            6 => {
                if let (Some(id), Some(o)) = (order, &order_rec) {
                    let who = owner_of(o.client).unwrap_or(c);
                    outcome(
                        "topUp",
                        who.market.top_up(id, meth(rng.gen_range(1..300))).await,
                        &mut stats,
                    );
                }
            }
            7 | 8 => {
                if let (Some(id), Some(o)) = (order, &order_rec) {
                    let who = owner_of(o.provider).unwrap_or(p);
                    outcome("acceptOrder", who.market.accept_order(id).await, &mut stats);
                }
            }
            9 => {
                if let (Some(id), Some(o)) = (order, &order_rec) {
                    let who = owner_of(o.provider).unwrap_or(p);
                    outcome("rejectOrder", who.market.reject_order(id).await, &mut stats);
                }
            }
            10 => {
                if let Some(id) = order {
                    // Sometimes the client, sometimes a stranger (valid only after timeout).
                    outcome("cancelOrder", c.market.cancel_order(id).await, &mut stats);
                }
            }
            11 | 12 => {
                if let (Some(id), Some(o)) = (order, &order_rec) {
                    if let (Some(client), Some(prov)) = (owner_of(o.client), owner_of(o.provider)) {
                        // Mostly a fresh higher voucher, sometimes a replay or an over-spend.
                        let amount = match rng.gen_range(0..10) {
                            0 => o.redeemed,
                            1 => o.escrow + U256::from(1u64),
                            _ if o.escrow > o.redeemed => {
                                let room: u64 = ((o.escrow - o.redeemed) / meth(1)).saturating_to();
                                o.redeemed + meth(rng.gen_range(0..=room)).max(U256::from(1u64))
                            }
                            _ => o.redeemed + U256::from(1u64),
                        };
                        let v = client.voucher(id, amount).await;
                        if rng.gen_bool(0.2) {
                            outcome(
                                "redeemAndSettle",
                                prov.market.redeem_and_settle(&v).await,
                                &mut stats,
                            );
                        } else {
                            outcome(
                                "redeemVoucher",
                                prov.market.redeem_voucher(&v).await,
                                &mut stats,
                            );
                        }
                    }
                }
            }
            13 => {
                if let (Some(id), Some(o)) = (order, &order_rec) {
                    let who = owner_of(o.client).unwrap_or(c);
                    outcome(
                        "requestClose",
                        who.market.request_close(id).await,
                        &mut stats,
                    );
                }
            }
            14 => {
                if let (Some(id), Some(o)) = (order, &order_rec) {
                    let addr = if rng.gen_bool(0.5) {
                        o.client
                    } else {
                        o.provider
                    };
                    let who = owner_of(addr).unwrap_or(c);
                    outcome("settle", who.market.settle(id).await, &mut stats);
                }
            }
            15 => {
                let all: Vec<&Actor> = world.everyone().collect();
                let who = all[rng.gen_range(0..all.len())];
                outcome("withdraw", who.market.withdraw().await, &mut stats);
            }
            16 | 28 | 29 => {
                let secs = rng.gen_range(10..300);
                world
                    .fx
                    .chain
                    .increase_time(secs)
                    .await
                    .expect("time travel");
                stats.entry("increaseTime".into()).or_default().0 += 1;
            }
            17..=19 | 26 | 27 | 30..=32 => {
                let v = &world.verifiers[rng.gen_range(0..world.verifiers.len())];
                let now = world
                    .fx
                    .owner
                    .market
                    .current_period()
                    .await
                    .expect("period");
                let period = now.saturating_sub(rng.gen_range(0..2));
                // Provider 0 is reported on most, so that quorums (and slashes) happen.
                let (pi, p) = if rng.gen_bool(0.7) {
                    (0, &world.providers[0])
                } else {
                    (pi, p)
                };
                let r = Report {
                    provider: p.addr(),
                    period,
                    // Provider 0 is mostly bad, the others mostly good.
                    passed: rng.gen_bool(if pi == 0 { 0.15 } else { 0.85 }),
                    metricsHash: B256::repeat_byte(step as u8),
                };
                if outcome("submitReport", v.market.submit_report(&r).await, &mut stats) {
                    world
                        .reports
                        .insert((v.addr(), p.addr(), period), (r.passed, false));
                }
            }
            20 => {
                let v = &world.verifiers[rng.gen_range(0..world.verifiers.len())];
                let amount = world.fx.params.min_verifier_stake
                    + world.fx.params.report_bond * U256::from(rng.gen_range(0..6u64));
                outcome(
                    "joinVerifiers",
                    v.market.join_verifiers(amount).await,
                    &mut stats,
                );
            }
            21 => {
                let v = &world.verifiers[rng.gen_range(0..world.verifiers.len())];
                let op_name = "requestVerifierUnstake";
                let amount = world.fx.params.report_bond * U256::from(rng.gen_range(1..30u64));
                outcome(
                    op_name,
                    v.market.request_verifier_unstake(amount).await,
                    &mut stats,
                );
                outcome(
                    "withdrawVerifierStake",
                    v.market.withdraw_verifier_stake().await,
                    &mut stats,
                );
            }
            22 | 23 => {
                let keys: Vec<(Address, u64)> = world.reports.keys().map(|k| (k.1, k.2)).collect();
                if !keys.is_empty() {
                    let (prov, period) = keys[rng.gen_range(0..keys.len())];
                    let by = &world.verifiers[rng.gen_range(0..world.verifiers.len())];
                    if outcome(
                        "finalize",
                        by.market.finalize(prov, period).await,
                        &mut stats,
                    ) && world
                        .fx
                        .owner
                        .market
                        .slashed(prov, period)
                        .await
                        .expect("view")
                    {
                        world.slashes += 1;
                    }
                }
            }
            24 => {
                let keys: Vec<(Address, Address, u64)> = world.reports.keys().copied().collect();
                if !keys.is_empty() {
                    let key = keys[rng.gen_range(0..keys.len())];
                    let (v, prov, period) = key;
                    if outcome(
                        "claimReport",
                        c.market.claim_report(v, prov, period).await,
                        &mut stats,
                    ) {
                        if let Some(r) = world.reports.get_mut(&key) {
                            r.1 = true;
                        }
                    }
                }
            }
            _ => {
                if let Some(id) = order {
                    outcome(
                        "claimSlashShare",
                        c.market.claim_slash_share(id).await,
                        &mut stats,
                    );
                }
            }
        }
        (open_orders, accepted_orders) = world.check_invariant(step, seed).await;
    }

    println!("slashes: {}", world.slashes);
    println!("op: (succeeded, reverted)");
    for (op, (ok, reverted)) in &stats {
        println!("  {op:16} {ok:4} {reverted:4}");
    }
    let succeeded: u32 = stats.values().map(|s| s.0).sum();
    assert!(
        succeeded as usize >= steps / 4,
        "too few operations succeeded: {stats:?}"
    );
}

fn outcome_val<T>(
    op: &str,
    r: Result<T, ChainError>,
    stats: &mut BTreeMap<String, (u32, u32)>,
) -> Option<T> {
    let entry = stats.entry(op.to_string()).or_default();
    match r {
        Ok(v) => {
            entry.0 += 1;
            Some(v)
        }
        Err(ChainError::Reverted { .. }) => {
            entry.1 += 1;
            None
        }
        Err(e) => panic!("{op}: unexpected non-revert error: {e}"),
    }
}
