//! Order matching: which offers fit a request, best first (sans-IO).
//!
//! An offer is eligible if it is in the requested region (when one is
//! given), costs at most `max_price_per_gib_wei`, carries at least
//! `min_capacity_mbps`, and its provider's reputation is at least
//! `min_reputation`. Eligible offers are scored
//! `0.6 × price + 0.3 × reputation + 0.1 × capacity`, each term in [0, 1]:
//! price is `1 − price / max_price`, capacity is relative to the largest
//! eligible offer. Price weighs most because it is what the client pays;
//! reputation (from verifier reports) guards against cheap but bad
//! providers. Ties go to the cheaper, then larger, then lower PeerId, so a
//! ranking is deterministic.

use flowshield_proto::{Offer, PeerId, Region};
use std::cmp::Ordering;
use std::collections::HashMap;

const PRICE_WEIGHT: f64 = 0.6;
const REPUTATION_WEIGHT: f64 = 0.3;
const CAPACITY_WEIGHT: f64 = 0.1;

/// Reputation of a provider with no history.
pub const NEUTRAL_REPUTATION: f64 = 0.5;

/// What a client asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchRequest {
    pub region: Option<Region>,
    pub max_price_per_gib_wei: u128,
    pub min_capacity_mbps: u32,
    pub min_reputation: f64,
}

/// Reputation scores in [0, 1] by provider.
pub trait Reputation {
    fn score(&self, offer: &Offer) -> f64;
}

/// Every provider is [`NEUTRAL_REPUTATION`] (until verifier reports exist).
#[derive(Debug, Clone, Copy, Default)]
pub struct NeutralReputation;

impl Reputation for NeutralReputation {
    fn score(&self, _: &Offer) -> f64 {
        NEUTRAL_REPUTATION
    }
}

impl Reputation for HashMap<PeerId, f64> {
    fn score(&self, offer: &Offer) -> f64 {
        self.get(&offer.provider_peer_id)
            .copied()
            .unwrap_or(NEUTRAL_REPUTATION)
    }
}

/// One eligible offer and its score.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked<'a> {
    pub offer: &'a Offer,
    pub score: f64,
    pub reputation: f64,
}

fn clamp_unit(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// Eligible offers and their scores, in no particular order.
fn score_eligible<'a>(
    candidates: impl IntoIterator<Item = &'a Offer>,
    request: &MatchRequest,
    reputation: &impl Reputation,
) -> impl Iterator<Item = Ranked<'a>> {
    let eligible: Vec<(&Offer, f64)> = candidates
        .into_iter()
        .filter(|o| request.region.as_ref().is_none_or(|r| &o.region == r))
        .filter(|o| o.price_per_gib_wei <= request.max_price_per_gib_wei)
        .filter(|o| o.capacity_mbps >= request.min_capacity_mbps)
        .map(|o| (o, clamp_unit(reputation.score(o))))
        .filter(|(_, rep)| *rep >= request.min_reputation)
        .collect();
    let max_capacity = eligible
        .iter()
        .map(|(o, _)| o.capacity_mbps)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let max_price = request.max_price_per_gib_wei as f64;
    eligible.into_iter().map(move |(offer, rep)| {
        let price = if max_price > 0.0 {
            1.0 - offer.price_per_gib_wei as f64 / max_price
        } else {
            1.0
        };
        let capacity = offer.capacity_mbps as f64 / max_capacity;
        Ranked {
            offer,
            score: PRICE_WEIGHT * clamp_unit(price)
                + REPUTATION_WEIGHT * rep
                + CAPACITY_WEIGHT * clamp_unit(capacity),
            reputation: rep,
        }
    })
}

/// Eligible offers, best first.
pub fn rank<'a>(
    candidates: impl IntoIterator<Item = &'a Offer>,
    request: &MatchRequest,
    reputation: &impl Reputation,
) -> Vec<Ranked<'a>> {
    let mut ranked: Vec<Ranked<'a>> = score_eligible(candidates, request, reputation).collect();
    ranked.sort_by(compare);
    ranked
}

/// The single best offer, if any is eligible: the first of [`rank`], found
/// in one pass without sorting (what `/v1/match` runs over every live offer).
pub fn best<'a>(
    candidates: impl IntoIterator<Item = &'a Offer>,
    request: &MatchRequest,
    reputation: &impl Reputation,
) -> Option<Ranked<'a>> {
    score_eligible(candidates, request, reputation).min_by(compare)
}

fn compare(a: &Ranked<'_>, b: &Ranked<'_>) -> Ordering {
    b.score
        .total_cmp(&a.score)
        .then(a.offer.price_per_gib_wei.cmp(&b.offer.price_per_gib_wei))
        .then(b.offer.capacity_mbps.cmp(&a.offer.capacity_mbps))
        .then_with(|| {
            a.offer
                .provider_peer_id
                .to_bytes()
                .cmp(&b.offer.provider_peer_id.to_bytes())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowshield_proto::{Keypair, WgPublicKey};

    fn offer(region: &str, price: u128, capacity: u32) -> Offer {
        Offer {
            provider_peer_id: Keypair::generate_ed25519().public().to_peer_id(),
            chain_address: "0x0000000000000000000000000000000000000001"
                .parse()
                .unwrap(),
            wg_public_key: WgPublicKey([1; 32]),
            endpoint: "192.0.2.1:51820".parse().unwrap(),
            region: Region::new(region).unwrap(),
            price_per_gib_wei: price,
            price_per_hour_wei: 0,
            capacity_mbps: capacity,
            max_clients: 10,
            tunnel_subnet: None,
        }
    }

    fn request(region: Option<&str>, max_price: u128, min_capacity: u32) -> MatchRequest {
        MatchRequest {
            region: region.map(|r| Region::new(r).unwrap()),
            max_price_per_gib_wei: max_price,
            min_capacity_mbps: min_capacity,
            min_reputation: 0.0,
        }
    }

    #[test]
    fn filters_region_price_capacity() {
        let offers = vec![
            offer("eu", 100, 100),
            offer("us", 50, 100),
            offer("eu", 300, 100),
            offer("eu", 100, 10),
        ];
        let ranked = rank(&offers, &request(Some("eu"), 200, 50), &NeutralReputation);
        assert_eq!(ranked.len(), 1);
        assert_eq!(ranked[0].offer, &offers[0]);
        let any_region = rank(&offers, &request(None, 200, 50), &NeutralReputation);
        assert_eq!(any_region.len(), 2);
        assert_eq!(any_region[0].offer, &offers[1], "cheapest first");
    }

    #[test]
    fn cheaper_wins_at_equal_reputation() {
        let offers = vec![
            offer("eu", 80, 100),
            offer("eu", 20, 100),
            offer("eu", 50, 100),
        ];
        let prices: Vec<u128> = rank(&offers, &request(None, 100, 0), &NeutralReputation)
            .iter()
            .map(|r| r.offer.price_per_gib_wei)
            .collect();
        assert_eq!(prices, vec![20, 50, 80]);
    }

    #[test]
    fn reputation_outweighs_a_small_price_gap() {
        let offers = vec![offer("eu", 50, 100), offer("eu", 55, 100)];
        let mut reputation = HashMap::new();
        reputation.insert(offers[0].provider_peer_id, 0.1);
        reputation.insert(offers[1].provider_peer_id, 0.9);
        let best = best(&offers, &request(None, 100, 0), &reputation).unwrap();
        assert_eq!(best.offer, &offers[1]);
        assert_eq!(best.reputation, 0.9);
    }

    #[test]
    fn min_reputation_excludes_and_bad_scores_are_clamped() {
        let offers = vec![offer("eu", 10, 100), offer("eu", 10, 100)];
        let mut reputation = HashMap::new();
        reputation.insert(offers[0].provider_peer_id, f64::NAN);
        reputation.insert(offers[1].provider_peer_id, 7.0);
        let mut req = request(None, 100, 0);
        req.min_reputation = 0.5;
        let ranked = rank(&offers, &req, &reputation);
        assert_eq!(ranked.len(), 1);
        assert_eq!(ranked[0].reputation, 1.0);
    }

    #[test]
    fn capacity_breaks_price_ties_and_order_is_deterministic() {
        let offers = vec![
            offer("eu", 10, 100),
            offer("eu", 10, 400),
            offer("eu", 10, 100),
        ];
        let first = rank(&offers, &request(None, 100, 0), &NeutralReputation);
        assert_eq!(first[0].offer, &offers[1]);
        let mut reversed = offers.clone();
        reversed.reverse();
        let second = rank(&reversed, &request(None, 100, 0), &NeutralReputation);
        let ids = |r: &[Ranked<'_>]| {
            r.iter()
                .map(|x| x.offer.provider_peer_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&first), ids(&second));
    }

    #[test]
    fn zero_price_limit_and_empty_input() {
        let offers = vec![offer("eu", 0, 100), offer("eu", 1, 100)];
        let ranked = rank(&offers, &request(None, 0, 0), &NeutralReputation);
        assert_eq!(ranked.len(), 1);
        assert!(best(&[], &request(None, 100, 0), &NeutralReputation).is_none());
    }

    #[test]
    fn huge_prices_do_not_overflow() {
        let offers = vec![offer("eu", u128::MAX, 1), offer("eu", u128::MAX - 1, 1)];
        let ranked = rank(&offers, &request(None, u128::MAX, 0), &NeutralReputation);
        assert_eq!(ranked.len(), 2);
        assert_eq!(ranked[0].offer.price_per_gib_wei, u128::MAX - 1);
    }
}
