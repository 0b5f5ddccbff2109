//! The dashboard page: [`DashboardView`] rendered to HTML with maud, which
//! escapes every value. One self-contained document — inline CSS, no
//! script, no external resource — so it renders offline and under a
//! `default-src 'none'` content security policy.
//!
//! For programs (and the browser test) values carry exact forms beside the
//! readable ones: amounts `data-wei`, byte counts `data-bytes`, times
//! `data-ms`; panels `id` and `data-state`; rows `data-order`; facts
//! `data-field`.

use super::format::{bytes_short, eth_short, relative, utc};
use super::view::*;
use maud::{html, Markup, PreEscaped, DOCTYPE};

const CSS: &str = include_str!("dashboard.css");

/// The whole page; `refresh_secs` > 0 reloads it that often.
pub fn page(view: &DashboardView, refresh_secs: u32) -> String {
    let now = view.generated_at_ms;
    let id = &view.identity;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if refresh_secs > 0 {
                    meta http-equiv="refresh" content=(refresh_secs);
                }
                title { "FlowShield provider " (short_id(&id.peer_id)) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    h1 { "FlowShield provider" }
                    p.sub {
                        span.mono { (id.peer_id) }
                        " · " (id.region) " · generated "
                        span data-ms=(now) { (utc(now)) }
                        @if refresh_secs > 0 { " · refreshes every " (refresh_secs) " s" }
                    }
                }
                main {
                    div.grid {
                        (identity(id))
                        (panel("stake", "Stake", &view.stake, |s| stake(s, now)))
                        (panel("earnings", "Earnings", &view.earnings, earnings))
                        (panel("reputation", "Reputation", &view.reputation, reputation))
                        (panel("certificate", "Certificate", &view.certificate, |c| certificate(c, now)))
                        (panel("exit", "Exit policy", &view.exit, exit))
                    }
                    (panel("sessions", "Sessions", &view.sessions, |s| sessions(s, now)))
                    (panel("traffic", "Traffic", &view.traffic, |t| traffic(t, now)))
                }
                footer {
                    "The same data as JSON: " a href="/api/status" { "/api/status" }
                }
            }
        }
    }
    .into_string()
}

fn short_id(peer_id: &str) -> &str {
    let start = peer_id.len().saturating_sub(8);
    peer_id.get(start..).unwrap_or(peer_id)
}

/// A panel: its content, or why there is none, in place.
fn panel<T>(id: &str, title: &str, panel: &Panel<T>, body: impl FnOnce(&T) -> Markup) -> Markup {
    let (state, content) = match panel {
        Panel::Ok { data } => ("ok", body(data)),
        Panel::NotConfigured { reason } => ("not_configured", html! { p.muted { (reason) } }),
        Panel::Unavailable { error } => (
            "unavailable",
            html! { p.error { strong { "Unavailable: " } (error) } },
        ),
    };
    html! {
        section.panel id=(id) data-state=(state) {
            h2 { (title) }
            (content)
        }
    }
}

fn amount(a: &Amount) -> Markup {
    html! {
        span.amount data-wei=(a.wei) title={ (a.wei) " wei = " (a.eth) " ETH" } { (eth_short(&a.eth)) }
    }
}

fn bytes(n: u64) -> Markup {
    html! { span.bytes data-bytes=(n) title={ (n) " bytes" } { (bytes_short(n)) } }
}

fn when(ms: u64, now: u64) -> Markup {
    html! { span.time data-ms=(ms) title=(utc(ms)) { (relative(ms, now)) } }
}

fn badge(kind: &str, text: &str) -> Markup {
    html! { span class={ "badge " (kind) } { (text) } }
}

fn yes_no(yes: bool) -> Markup {
    if yes {
        badge("good", "yes")
    } else {
        badge("bad", "no")
    }
}

fn identity(id: &IdentityView) -> Markup {
    html! {
        section.panel id="identity" data-state="ok" {
            h2 { "Identity" }
            dl {
                dt { "Peer ID" } dd.mono data-field="peer_id" { (id.peer_id) }
                dt { "Chain address" } dd.mono data-field="chain_address" { (id.chain_address) }
                dt { "Region" } dd data-field="region" { (id.region) }
                dt { "Endpoint" } dd.mono data-field="endpoint" { (id.endpoint) }
                dt { "WireGuard key" } dd.mono data-field="wg_public_key" { (id.wg_public_key) }
                dt { "Interface" } dd.mono { (id.interface) }
                dt { "Price per GiB" } dd data-field="price_per_gib" { (amount(&id.price_per_gib)) }
                dt { "Price per hour" } dd data-field="price_per_hour" { (amount(&id.price_per_hour)) }
                dt { "Capacity" } dd { (id.capacity_mbps) " Mbit/s, up to " (id.max_clients) " clients" }
            }
        }
    }
}

fn stake(s: &StakeView, now: u64) -> Markup {
    let status = match (s.registered, s.active) {
        (false, _) => badge("bad", "not registered"),
        (true, false) => badge("warn", "below minimum stake"),
        (true, true) => badge("good", "active"),
    };
    html! {
        p data-field="status" { (status) }
        dl {
            dt { "Staked" } dd data-field="staked" { (amount(&s.staked)) }
            dt { "Minimum" } dd data-field="min_stake" { (amount(&s.min_stake)) }
            dt { "Unstake request" }
            dd data-field="unstake" {
                @match &s.unstake {
                    UnstakeState::None => "none",
                    UnstakeState::Unbonding { amount: a, unlock_at_ms } => {
                        (amount(a)) " unbonding, unlocks " (when(*unlock_at_ms, now))
                    }
                    UnstakeState::Withdrawable { amount: a, since_ms } => {
                        (amount(a)) " withdrawable since " (when(*since_ms, now))
                    }
                }
            }
        }
    }
}

fn earnings(e: &EarningsView) -> Markup {
    html! {
        p.big data-field="redeemed_total" { (amount(&e.redeemed_total)) }
        p.muted { "redeemed on chain since start" }
        dl {
            dt { "Open sessions" } dd data-field="open_redeemed" { (amount(&e.open_redeemed)) " redeemed" }
            dt { "Not yet redeemed" } dd data-field="open_unredeemed" { (amount(&e.open_unredeemed)) " in vouchers held" }
            dt { "Settled" } dd data-field="settled_paid" {
                (amount(&e.settled_paid)) " from " (e.settled_sessions) " session"
                @if e.settled_sessions != 1 { "s" }
            }
            dt { "Claimable on chain" }
            dd data-field="claimable" {
                @match &e.claimable {
                    Panel::Ok { data } => { (amount(data)) " withdrawable" }
                    Panel::NotConfigured { reason } => span.muted { (reason) },
                    Panel::Unavailable { error } => span.error { "unavailable: " (error) },
                }
            }
        }
    }
}

fn reputation(r: &ReputationView) -> Markup {
    let pct = (r.score.clamp(0.0, 1.0) * 100.0).round();
    html! {
        p.big data-field="score" data-score=(r.score) { (format!("{:.2}", r.score)) }
        div.meter { div style={ "width:" (pct) "%" } {} }
        p data-field="reports" data-reports=(r.reports) {
            @if r.neutral {
                "neutral — no verifier reports yet"
            } @else {
                (r.reports) " report" @if r.reports != 1 { "s" } " (" (r.passed) " passed) over "
                (r.periods) " period" @if r.periods != 1 { "s" }
                @if let Some(p) = r.latest_period { ", latest period " (p) }
            }
        }
        p.muted { "from " span.mono { (r.fullnode) } }
    }
}

fn certificate(c: &CertificateView, now: u64) -> Markup {
    let verdict = match c.verdict {
        CertVerdict::Valid => badge("good", "valid · checked on chain"),
        CertVerdict::ValidUnchecked => badge("good", "valid · not checked on chain"),
        CertVerdict::Revoked => badge("bad", "revoked"),
        CertVerdict::Expired => badge("bad", "expired"),
        CertVerdict::NotYetValid => badge("warn", "not yet valid"),
        CertVerdict::WrongKeys => badge("bad", "binds other keys"),
        CertVerdict::UnknownOperator => badge("bad", "operator not registered"),
    };
    html! {
        p data-field="verdict" data-verdict=(serde_plain(&c.verdict)) { (verdict) }
        dl {
            dt { "Subject" } dd.mono data-field="subject" { (c.subject) }
            dt { "Serial" } dd.mono data-field="serial" { (c.serial) }
            dt { "Valid" } dd data-field="validity" {
                (utc(c.not_before_ms)) " – " (utc(c.not_after_ms))
                " (" @match c.validity {
                    Validity::Valid => { "ends " (when(c.not_after_ms, now)) }
                    Validity::Expired => { "ended " (when(c.not_after_ms, now)) }
                    Validity::NotYetValid => { "starts " (when(c.not_before_ms, now)) }
                } ")"
            }
            dt { "Binds this node" } dd data-field="binds_this_node" {
                (yes_no(c.binds_this_node))
                @if let Some(field) = &c.mismatch { " " span.error { (field) " differs" } }
            }
            dt { "Operator" } dd.mono data-field="operator" { (c.operator) }
            dt { "On chain" }
            dd data-field="revocation" {
                @match &c.registry {
                    Panel::Ok { data } => {
                        @if data.revoked { (badge("bad", "revoked")) }
                        @else { (badge("good", "not revoked")) }
                        " operator registered " (yes_no(data.operator_registered && data.root_matches))
                    }
                    Panel::NotConfigured { reason } => span.muted { (reason) },
                    Panel::Unavailable { error } => span.error { "unavailable: " (error) },
                }
            }
        }
    }
}

/// A unit enum's serde name (`not_yet_valid`), for attributes.
/// What clients may reach through this host, and at what rate.
fn exit(x: &super::exit::ExitView) -> Markup {
    let (e, s) = (&x.egress, &x.shaping);
    let list = |items: &[String]| items.join(", ");
    let ports: Vec<String> = e.blocked_ports.iter().map(u16::to_string).collect();
    let mbit = |kbit: Option<u64>| kbit.map(|k| format!("{} Mbit/s", k as f64 / 1000.0));
    html! {
        @if e.enabled {
            p data-field="egress" { (badge("good", "egress filter on")) }
            dl {
                dt { "Uplink" } dd.mono data-field="uplink" { (e.uplink.as_deref().unwrap_or_default()) }
                dt { "Clients" } dd.mono data-field="tunnel_subnet" { (e.tunnel_subnet.as_deref().unwrap_or_default()) " (masqueraded)" }
                dt { "Client to client" } dd data-field="client_to_client" { (badge("good", "blocked")) }
                dt { "Blocked ranges" } dd.mono data-field="blocked_ranges" { (list(&e.blocked_ranges)) }
                dt { "Allowed exceptions" } dd.mono data-field="allowed_exceptions" {
                    @if e.allowed_exceptions.is_empty() { span.muted { "none" } } @else { (list(&e.allowed_exceptions)) }
                }
                dt { "Blocked ports" } dd.mono data-field="blocked_ports" {
                    @if ports.is_empty() { span.muted { "none" } } @else { (ports.join(", ")) }
                }
                dt { "SMTP (TCP 25)" } dd data-field="smtp" {
                    @if e.smtp_blocked { (badge("good", "blocked")) } @else { (badge("warn", "allowed")) }
                }
            }
        } @else {
            p data-field="egress" {
                (badge("bad", "egress filter off"))
                " clients reach everything this host reaches ([egress] enabled = false)"
            }
        }
        dl {
            dt { "Per-client rate" } dd data-field="shaping" {
                @if let (Some(share), Some(ceiling)) = (mbit(s.per_client_kbit), mbit(s.per_client_ceiling_kbit)) {
                    span data-kbit=(s.per_client_kbit.unwrap_or_default()) { (share) } " guaranteed, up to " (ceiling) " each"
                } @else {
                    (badge("warn", "not shaped")) " ([egress] shape_clients = false)"
                }
            }
        }
    }
}

fn serde_plain(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn sessions(s: &SessionsView, now: u64) -> Markup {
    html! {
        div.scroll {
            table {
                thead { tr {
                    th { "Order" } th { "Client" } th { "Client WireGuard key" } th { "Tunnel address" }
                    th { "Started" } th { "Last voucher" } th.num { "Escrow" } th.num { "Vouchers" } th.num { "Redeemed" }
                } }
                tbody {
                    @for row in &s.open {
                        tr data-order=(row.order_id) {
                            td.mono data-field="order_id" { (row.order_id) }
                            td.mono.key data-field="client" { (row.client) }
                            td.mono.key data-field="client_wg_key" { (row.client_wg_key) }
                            td.mono data-field="tunnel_address" { (row.tunnel_address) }
                            td data-field="started" { (when(row.started_ms, now)) }
                            td data-field="last_voucher" {
                                @match row.last_voucher_ms {
                                    Some(ms) => (when(ms, now)),
                                    None => span.muted { "none yet" },
                                }
                            }
                            td.num data-field="escrow" { (amount(&row.escrow)) }
                            td.num data-field="vouchers_cumulative" { (amount(&row.vouchers_cumulative)) }
                            td.num data-field="redeemed" { (amount(&row.redeemed)) }
                        }
                    }
                    @if s.open.is_empty() {
                        tr { td.muted colspan="9" { "No open sessions." } }
                    }
                }
            }
        }
    }
}

fn traffic(t: &TrafficView, now: u64) -> Markup {
    html! {
        div.scroll {
            table {
                thead { tr {
                    th { "Order" } th { "Client WireGuard key" } th.num { "Received" } th.num { "Sent" }
                    th.num { "Total" } th { "Last handshake" }
                } }
                tbody {
                    @for row in &t.sessions {
                        tr data-order=(row.order_id) {
                            td.mono { (row.order_id) }
                            td.mono.key { (row.client_wg_key) }
                            @if row.on_data_plane {
                                td.num data-field="rx" { (bytes(row.rx_bytes)) }
                                td.num data-field="tx" { (bytes(row.tx_bytes)) }
                                td.num data-field="total" { (bytes(row.rx_bytes.saturating_add(row.tx_bytes))) }
                                td data-field="last_handshake" {
                                    @match row.last_handshake_ms {
                                        Some(ms) => (when(ms, now)),
                                        None => span.muted { "never" },
                                    }
                                }
                            } @else {
                                td.error colspan="4" { "peer missing from the data plane" }
                            }
                        }
                    }
                    @if t.sessions.is_empty() {
                        tr { td.muted colspan="6" { "No open sessions." } }
                    }
                }
                tfoot { tr {
                    th colspan="2" { "Total" }
                    td.num data-field="total_rx" { (bytes(t.total_rx_bytes)) }
                    td.num data-field="total_tx" { (bytes(t.total_tx_bytes)) }
                    td.num { (bytes(t.total_rx_bytes.saturating_add(t.total_tx_bytes))) }
                    td {}
                } }
            }
        }
        p.muted {
            "Data plane " span.mono { (t.interface) } " over UAPI"
            @if t.other_peers > 0 { "; " (t.other_peers) " other peer(s) belong to no open session" }
            "."
        }
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
