//! Per-client rate limits with Linux tc, keyed on each client's tunnel
//! address, so no client gets more than the offer promises.
//!
//! Both directions get the same HTB tree: one parent class carries the
//! whole capacity; each client's class is guaranteed its fair share
//! (capacity / max_clients) and may borrow up to the whole capacity, so
//! clients share it fairly when busy. A u32 filter on the client's address
//! picks its class.
//! - Download (towards the client): the tree is the data-plane interface's
//!   root qdisc, keyed on the destination address.
//! - Upload (from the client): the interface's ingress redirects (mirred)
//!   everything to an IFB device whose root is the tree, keyed on the
//!   source address. (Policing would need act_police, which not every
//!   kernel has; HTB, u32, mirred and ifb are everywhere.)
//!
//! Traffic of the host itself that matches no client (the provider's own
//! tunnel address, probes) is not shaped. [`ShapingPlan`] builds the tc
//! command lines (sans-IO, unit-tested); [`Shaper`] runs them.

use super::egress::{NetTools, ToolError};
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// The HTB class (minor id) of the whole capacity; clients' minors are
/// their offsets in the subnet, which never reach it in a /16 or smaller.
const PARENT_MINOR: u32 = 0xffff;

/// Bytes a class may send per round when borrowing: one full-size packet
/// (HTB's default, rate / 10, is too big for fair sharing at high rates).
const QUANTUM: &str = "1514";

/// Why shaping could not be set up or changed.
#[derive(Debug, thiserror::Error)]
pub enum ShapingError {
    #[error("shaping: tunnel_subnet {0} is larger than a /16 (one tc class per address)")]
    SubnetTooLarge(Ipv4Net),
    #[error("shaping: capacity_mbps must be above 0")]
    NoCapacity,
    #[error("shaping: {address} is not in tunnel_subnet {subnet}")]
    Outside { address: Ipv4Addr, subnet: Ipv4Net },
    #[error("shaping: {0}")]
    Tool(#[from] ToolError),
    #[error("shaping: qdiscs left after removing them: {0}")]
    LeftOver(String),
}

/// The tc commands for one interface (sans-IO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapingPlan {
    pub iface: String,
    pub subnet: Ipv4Net,
    /// The whole capacity, and each client's ceiling, in kbit/s.
    pub capacity_kbit: u64,
    /// Each client's guaranteed share, in kbit/s.
    pub share_kbit: u64,
}

/// One tc command line (without the leading `tc`).
pub type TcArgs = Vec<String>;

fn args(parts: &[&str]) -> TcArgs {
    parts.iter().map(|s| s.to_string()).collect()
}

impl ShapingPlan {
    /// `capacity_mbps` shared by at most `max_clients`, for clients of
    /// `subnet` on `iface`.
    pub fn new(
        iface: &str,
        subnet: Ipv4Net,
        capacity_mbps: u32,
        max_clients: u32,
    ) -> Result<Self, ShapingError> {
        if subnet.prefix_len() < 16 {
            return Err(ShapingError::SubnetTooLarge(subnet));
        }
        if capacity_mbps == 0 {
            return Err(ShapingError::NoCapacity);
        }
        let capacity_kbit = u64::from(capacity_mbps) * 1000;
        Ok(Self {
            iface: iface.to_string(),
            subnet: subnet.trunc(),
            capacity_kbit,
            share_kbit: (capacity_kbit / u64::from(max_clients.max(1))).max(8),
        })
    }

    /// The class minor (and filter priority) of `address`.
    pub fn minor(&self, address: Ipv4Addr) -> Result<u32, ShapingError> {
        if !self.subnet.contains(&address) {
            return Err(ShapingError::Outside {
                address,
                subnet: self.subnet,
            });
        }
        Ok(u32::from(address) - u32::from(self.subnet.network()))
    }

    /// The IFB device that carries the interface's ingress (upload):
    /// the interface's name cut to 12 bytes, then "-up" (15 at most).
    pub fn ifb(&self) -> String {
        let cut: String = self.iface.chars().take(12).collect();
        format!("{cut}-up")
    }

    /// `ip` commands that create the IFB device and bring it up (the
    /// first fails harmlessly if it exists).
    pub fn ifb_device(&self) -> Vec<TcArgs> {
        let ifb = self.ifb();
        vec![
            args(&["link", "add", &ifb, "type", "ifb"]),
            args(&["link", "set", &ifb, "up"]),
        ]
    }

    /// Deletes the root qdiscs a last run left (errors ignored: there may
    /// be none); HTB cannot be changed in place.
    pub fn reset(&self) -> Vec<TcArgs> {
        let ifb = self.ifb();
        [self.iface.as_str(), ifb.as_str()]
            .into_iter()
            .map(|dev| args(&["qdisc", "del", "dev", dev, "root"]))
            .collect()
    }

    /// `tc` and `ip` commands that take all of it away (a provider that
    /// stops leaves no limits behind; errors ignored: parts may be gone):
    /// both trees, the ingress redirect, the IFB device.
    pub fn uninstall(&self) -> (Vec<TcArgs>, Vec<TcArgs>) {
        let mut tc = self.reset();
        tc.push(args(&[
            "qdisc",
            "del",
            "dev",
            &self.iface,
            "handle",
            "ffff:",
            "ingress",
        ]));
        (tc, vec![args(&["link", "del", &self.ifb()])])
    }

    /// The `tc qdisc show dev IFACE` command that [`ShapingPlan::left_over`]
    /// reads.
    pub fn show(&self) -> TcArgs {
        args(&["qdisc", "show", "dev", &self.iface])
    }

    /// The lines of `tc qdisc show dev IFACE` that are this plan's (its HTB
    /// root, its ingress): what an uninstall that did not finish left.
    pub fn left_over(shown: &str) -> Vec<String> {
        shown
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("qdisc htb 1: root") || l.starts_with("qdisc ingress ffff:"))
            .map(str::to_string)
            .collect()
    }

    /// After [`ShapingPlan::reset`] (a restarted provider starts clean): an
    /// HTB tree with its parent class on the interface and on
    /// the IFB device, and the interface's ingress sent to the IFB device.
    pub fn install(&self) -> Vec<TcArgs> {
        let cap = format!("{}kbit", self.capacity_kbit);
        let parent = format!("1:{PARENT_MINOR:x}");
        let ifb = self.ifb();
        let mut lines = Vec::new();
        for dev in [self.iface.as_str(), ifb.as_str()] {
            lines.push(args(&[
                "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb",
            ]));
            lines.push(args(&[
                "class", "replace", "dev", dev, "parent", "1:", "classid", &parent, "htb", "rate",
                &cap, "ceil", &cap, "quantum", QUANTUM,
            ]));
        }
        let dev = self.iface.as_str();
        // Deleting the ingress qdisc drops its filters; then add both anew.
        lines.push(args(&[
            "qdisc", "replace", "dev", dev, "handle", "ffff:", "ingress",
        ]));
        lines.push(args(&[
            "filter", "replace", "dev", dev, "parent", "ffff:", "protocol", "ip", "pref", "1",
            "handle", "800::1", "u32", "match", "u32", "0", "0", "action", "mirred", "egress",
            "redirect", "dev", &ifb,
        ]));
        lines
    }

    /// Commands that clear both directions' filters of `address` (run
    /// before adding, errors ignored: there may be none).
    pub fn clear(&self, address: Ipv4Addr) -> Result<Vec<TcArgs>, ShapingError> {
        let pref = self.minor(address)?.to_string();
        let ifb = self.ifb();
        Ok([self.iface.as_str(), ifb.as_str()]
            .into_iter()
            .map(|dev| args(&["filter", "del", "dev", dev, "parent", "1:", "pref", &pref]))
            .collect())
    }

    /// The classes and filters that limit `address` both ways.
    pub fn add(&self, address: Ipv4Addr) -> Result<Vec<TcArgs>, ShapingError> {
        let minor = self.minor(address)?;
        let pref = minor.to_string();
        let class = format!("1:{minor:x}");
        let parent = format!("1:{PARENT_MINOR:x}");
        let host = format!("{address}/32");
        let cap = format!("{}kbit", self.capacity_kbit);
        let share = format!("{}kbit", self.share_kbit);
        let ifb = self.ifb();
        let mut lines = Vec::new();
        for (dev, key) in [(self.iface.as_str(), "dst"), (ifb.as_str(), "src")] {
            lines.push(args(&[
                "class", "replace", "dev", dev, "parent", &parent, "classid", &class, "htb",
                "rate", &share, "ceil", &cap, "quantum", QUANTUM,
            ]));
            lines.push(args(&[
                "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "pref", &pref,
                "u32", "match", "ip", key, &host, "flowid", &class,
            ]));
        }
        Ok(lines)
    }

    /// The classes of `address` (its filters go with [`ShapingPlan::clear`]).
    pub fn remove_classes(&self, address: Ipv4Addr) -> Result<Vec<TcArgs>, ShapingError> {
        let class = format!("1:{:x}", self.minor(address)?);
        let ifb = self.ifb();
        Ok([self.iface.as_str(), ifb.as_str()]
            .into_iter()
            .map(|dev| args(&["class", "del", "dev", dev, "classid", &class]))
            .collect())
    }
}

/// Runs a [`ShapingPlan`]'s commands with `tc`.
#[derive(Debug, Clone)]
pub struct Shaper {
    plan: ShapingPlan,
    tools: NetTools,
}

fn strs(line: &[String]) -> Vec<&str> {
    line.iter().map(String::as_str).collect()
}

fn run_all(tools: &NetTools, lines: &[TcArgs]) -> Result<(), ToolError> {
    for line in lines {
        tools.run("tc", &strs(line), None)?;
    }
    Ok(())
}

fn run_ignoring(tools: &NetTools, lines: &[TcArgs]) {
    for line in lines {
        let _ = tools.run("tc", &strs(line), None);
    }
}

impl Shaper {
    pub fn new(plan: ShapingPlan, tools: NetTools) -> Self {
        Self { plan, tools }
    }

    pub fn plan(&self) -> &ShapingPlan {
        &self.plan
    }

    /// Sets up the interface's qdiscs (replacing what was there).
    pub async fn install(&self) -> Result<(), ShapingError> {
        let (plan, tools) = (self.plan.clone(), self.tools.clone());
        blocking(move || {
            let device = plan.ifb_device();
            // `ip link add` fails when the device is left from a last run.
            if let Some(add) = device.first() {
                let _ = tools.run("ip", &strs(add), None);
            }
            for line in device.iter().skip(1) {
                tools.run("ip", &strs(line), None)?;
            }
            run_ignoring(&tools, &plan.reset());
            run_all(&tools, &plan.install())?;
            Ok(())
        })
        .await?;
        tracing::info!(
            iface = %self.plan.iface,
            capacity_kbit = self.plan.capacity_kbit,
            share_kbit = self.plan.share_kbit,
            "per-client shaping installed"
        );
        Ok(())
    }

    /// Removes every limit and the IFB device (the provider stops), then
    /// reads the interface's qdiscs back: what is left is removed once
    /// more (a `tc` that did not run to the end, e.g. killed by a stop
    /// signal), and named in a warning if it stays.
    pub async fn uninstall(&self) {
        let (plan, tools) = (self.plan.clone(), self.tools.clone());
        let result = blocking(move || {
            let (tc, ip) = plan.uninstall();
            let mut left = Vec::new();
            for _ in 0..2 {
                run_ignoring(&tools, &tc);
                for line in &ip {
                    let _ = tools.run("ip", &strs(line), None);
                }
                let shown = tools.run("tc", &strs(&plan.show()), None)?;
                left = ShapingPlan::left_over(&shown);
                if left.is_empty() {
                    return Ok(());
                }
            }
            Err(ShapingError::LeftOver(left.join("; ")))
        })
        .await;
        match result {
            Ok(()) => tracing::info!(iface = %self.plan.iface, "per-client shaping removed"),
            Err(e) => tracing::warn!(error = %e, "removing per-client shaping failed"),
        }
    }

    /// Limits `address` (a session started).
    pub async fn add(&self, address: Ipv4Addr) -> Result<(), ShapingError> {
        let (plan, tools) = (self.plan.clone(), self.tools.clone());
        blocking(move || {
            run_ignoring(&tools, &plan.clear(address)?);
            run_all(&tools, &plan.add(address)?)?;
            Ok(())
        })
        .await
    }

    /// Lifts `address`'s limits (its session ended).
    pub async fn remove(&self, address: Ipv4Addr) -> Result<(), ShapingError> {
        let (plan, tools) = (self.plan.clone(), self.tools.clone());
        blocking(move || {
            run_ignoring(&tools, &plan.clear(address)?);
            run_all(&tools, &plan.remove_classes(address)?)?;
            Ok(())
        })
        .await
    }
}

/// `tc` runs are short but blocking: off the async workers.
async fn blocking(
    f: impl FnOnce() -> Result<(), ShapingError> + Send + 'static,
) -> Result<(), ShapingError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(ShapingError::Tool(ToolError::Spawn {
            program: "tc".into(),
            source: std::io::Error::other(e.to_string()),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> ShapingPlan {
        ShapingPlan::new("fs0", "10.77.0.0/16".parse().unwrap(), 20, 4).unwrap()
    }

    fn joined(lines: &[TcArgs]) -> Vec<String> {
        lines.iter().map(|l| l.join(" ")).collect()
    }

    #[test]
    fn rates_come_from_the_offer() {
        let p = plan();
        assert_eq!(p.capacity_kbit, 20_000);
        assert_eq!(p.share_kbit, 5_000);
        assert_eq!(p.ifb(), "fs0-up");
        let long = ShapingPlan::new("abcdefghijklmno", "10.77.0.0/24".parse().unwrap(), 1, 1);
        assert_eq!(long.unwrap().ifb(), "abcdefghijkl-up");
    }

    #[test]
    fn uninstall_takes_away_both_trees_the_redirect_and_the_ifb_device() {
        let (tc, ip) = plan().uninstall();
        assert_eq!(
            joined(&tc),
            [
                "qdisc del dev fs0 root",
                "qdisc del dev fs0-up root",
                "qdisc del dev fs0 handle ffff: ingress",
            ]
        );
        assert_eq!(joined(&ip), ["link del fs0-up"]);
        assert_eq!(plan().show().join(" "), "qdisc show dev fs0");
    }

    #[test]
    fn what_an_unfinished_uninstall_left_is_found() {
        let shown =
            "qdisc htb 1: root refcnt 257 r2q 10 default 0 direct_packets_stat 0 direct_qlen 500\n\
                     qdisc ingress ffff: parent ffff:fff1 ----------------\n";
        assert_eq!(ShapingPlan::left_over(shown).len(), 2);
        let clean = "qdisc noqueue 0: root refcnt 2\n";
        assert!(ShapingPlan::left_over(clean).is_empty());
        assert!(ShapingPlan::left_over("").is_empty());
    }

    #[test]
    fn install_replaces_both_trees_and_redirects_ingress() {
        assert_eq!(
            joined(&plan().install()),
            [
                "qdisc add dev fs0 root handle 1: htb",
                "class replace dev fs0 parent 1: classid 1:ffff htb rate 20000kbit ceil 20000kbit quantum 1514",
                "qdisc add dev fs0-up root handle 1: htb",
                "class replace dev fs0-up parent 1: classid 1:ffff htb rate 20000kbit ceil 20000kbit quantum 1514",
                "qdisc replace dev fs0 handle ffff: ingress",
                "filter replace dev fs0 parent ffff: protocol ip pref 1 handle 800::1 u32 match u32 0 0 action mirred egress redirect dev fs0-up",
            ]
        );
        assert_eq!(
            joined(&plan().reset()),
            ["qdisc del dev fs0 root", "qdisc del dev fs0-up root"]
        );
        assert_eq!(
            joined(&plan().ifb_device()),
            ["link add fs0-up type ifb", "link set fs0-up up"]
        );
    }

    #[test]
    fn a_client_is_keyed_on_its_tunnel_address_both_ways() {
        let p = plan();
        let a: Ipv4Addr = "10.77.1.2".parse().unwrap();
        assert_eq!(p.minor(a).unwrap(), 258);
        assert_eq!(
            joined(&p.add(a).unwrap()),
            [
                "class replace dev fs0 parent 1:ffff classid 1:102 htb rate 5000kbit ceil 20000kbit quantum 1514",
                "filter add dev fs0 parent 1: protocol ip pref 258 u32 match ip dst 10.77.1.2/32 flowid 1:102",
                "class replace dev fs0-up parent 1:ffff classid 1:102 htb rate 5000kbit ceil 20000kbit quantum 1514",
                "filter add dev fs0-up parent 1: protocol ip pref 258 u32 match ip src 10.77.1.2/32 flowid 1:102",
            ]
        );
        assert_eq!(
            joined(&p.clear(a).unwrap()),
            [
                "filter del dev fs0 parent 1: pref 258",
                "filter del dev fs0-up parent 1: pref 258",
            ]
        );
        assert_eq!(
            joined(&p.remove_classes(a).unwrap()),
            [
                "class del dev fs0 classid 1:102",
                "class del dev fs0-up classid 1:102"
            ]
        );
    }

    #[test]
    fn refuses_what_it_cannot_key() {
        assert!(matches!(
            ShapingPlan::new("fs0", "10.0.0.0/8".parse().unwrap(), 20, 4),
            Err(ShapingError::SubnetTooLarge(_))
        ));
        assert!(matches!(
            ShapingPlan::new("fs0", "10.77.0.0/24".parse().unwrap(), 0, 4),
            Err(ShapingError::NoCapacity)
        ));
        let outside = plan().add("10.78.0.2".parse().unwrap());
        assert!(matches!(outside, Err(ShapingError::Outside { .. })));
        // A small capacity over many clients still gets a usable share.
        let tiny = ShapingPlan::new("fs0", "10.77.0.0/24".parse().unwrap(), 1, 1000).unwrap();
        assert_eq!(tiny.share_kbit, 8);
    }
}
