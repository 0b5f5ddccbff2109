//! Interface configuration for `flowshield up`/`down`, done the way wg-quick
//! does it: with iproute2's `ip`, `resolvconf` for DNS, and `bash -c` for
//! hooks. The decisions (which routes, which rules) are pure functions; the
//! commands are run by [`run`].

use crate::config::{Table, WgQuickConfig};
use ip_network::IpNetwork;
use std::process::{Command, Stdio};

/// A command that failed.
#[derive(Debug, thiserror::Error)]
#[error("`{command}` failed: {message}")]
pub struct CommandError {
    pub command: String,
    pub message: String,
}

/// One external command: program and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub stdin: Option<String>,
}

impl Cmd {
    pub fn new(program: &str, args: &[&str]) -> Self {
        Self {
            program: program.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            stdin: None,
        }
    }
    fn ip(args: &[&str]) -> Self {
        Self::new("ip", args)
    }
    pub fn shell(script: &str, iface: &str) -> Self {
        Self {
            program: "bash".into(),
            args: vec!["-c".into(), script.replace("%i", iface)],
            stdin: None,
        }
    }
    pub fn display(&self) -> String {
        format!("{} {}", self.program, self.args.join(" "))
    }
}

/// Runs `cmd`, returning its stdout; stderr becomes the error message.
pub fn run(cmd: &Cmd) -> Result<String, CommandError> {
    let fail = |message: String| CommandError {
        command: cmd.display(),
        message,
    };
    let mut child = Command::new(&cmd.program)
        .args(&cmd.args)
        .stdin(if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let (Some(input), Some(mut pipe)) = (&cmd.stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(input.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(fail(format!(
            "{} ({})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        )))
    }
}

fn family(net: &IpNetwork) -> &'static str {
    if net.is_ipv4() {
        "-4"
    } else {
        "-6"
    }
}

fn is_default(net: &IpNetwork) -> bool {
    net.netmask() == 0
}

/// Commands that give `iface` its addresses and MTU and bring it up.
pub fn link_commands(cfg: &WgQuickConfig, iface: &str, mtu: u16) -> Vec<Cmd> {
    let mut cmds = Vec::new();
    for (net, text) in cfg
        .interface
        .addresses
        .iter()
        .zip(&cfg.interface.address_texts)
    {
        cmds.push(Cmd::ip(&[
            family(net),
            "address",
            "add",
            text,
            "dev",
            iface,
        ]));
    }
    cmds.push(Cmd::ip(&[
        "link",
        "set",
        "mtu",
        &mtu.to_string(),
        "up",
        "dev",
        iface,
    ]));
    cmds
}

/// The fwmark and table wg-quick uses for a full-tunnel (default route)
/// setup: the listen port, or 51820.
pub fn default_route_table(cfg: &WgQuickConfig, listen_port: u16) -> u32 {
    match cfg.interface.table {
        Table::Id(id) => id,
        _ if listen_port != 0 => listen_port.into(),
        _ => 51820,
    }
}

/// Route commands for every peer's AllowedIPs, most specific first. Default
/// routes go through policy routing (wg-quick's scheme): a dedicated table,
/// a rule sending unmarked traffic there, and the tunnel's own packets
/// (marked) using the main table.
pub fn route_commands(cfg: &WgQuickConfig, iface: &str, listen_port: u16) -> Vec<Cmd> {
    let mut nets: Vec<IpNetwork> = cfg
        .peers
        .iter()
        .flat_map(|p| p.allowed_ips.clone())
        .collect();
    nets.sort_by_key(|n| std::cmp::Reverse(n.netmask()));
    nets.dedup();
    let table = match cfg.interface.table {
        Table::Off => return Vec::new(),
        Table::Id(id) => Some(id.to_string()),
        Table::Auto => None,
    };
    let mut cmds = Vec::new();
    let mark = default_route_table(cfg, listen_port).to_string();
    for net in &nets {
        let text = net.to_string();
        if is_default(net) && table.is_none() {
            let f = family(net);
            cmds.push(Cmd::ip(&[
                f, "route", "add", &text, "dev", iface, "table", &mark,
            ]));
            cmds.extend(policy_rules(f, "add", &mark));
        } else {
            let mut args = vec![family(net), "route", "replace", &text, "dev", iface];
            if let Some(t) = &table {
                args.extend(["table", t.as_str()]);
            }
            cmds.push(Cmd::ip(&args));
        }
    }
    cmds
}

/// Whether any peer routes a default route (needs the fwmark set).
pub fn has_default_route(cfg: &WgQuickConfig) -> bool {
    cfg.interface.table == Table::Auto
        && cfg
            .peers
            .iter()
            .flat_map(|p| &p.allowed_ips)
            .any(is_default)
}

/// wg-quick's two policy rules for a default route through the tunnel:
/// unmarked traffic uses the tunnel's table, and the main table keeps every
/// route but its default. `verb` is "add" or "delete", so both directions
/// name exactly the same rules.
fn policy_rules(family: &str, verb: &str, mark: &str) -> [Cmd; 2] {
    [
        Cmd::ip(&[family, "rule", verb, "not", "fwmark", mark, "table", mark]),
        Cmd::ip(&[
            family,
            "rule",
            verb,
            "table",
            "main",
            "suppress_prefixlength",
            "0",
        ]),
    ]
}

/// Removes the policy rules `route_commands` added for default routes.
pub fn teardown_commands(cfg: &WgQuickConfig, listen_port: u16) -> Vec<Cmd> {
    if !has_default_route(cfg) {
        return Vec::new();
    }
    let mark = default_route_table(cfg, listen_port).to_string();
    let mut cmds = Vec::new();
    for f in ["-4", "-6"] {
        cmds.extend(policy_rules(f, "delete", &mark));
    }
    cmds
}

/// The `resolvconf` call that installs the DNS servers, if any.
pub fn dns_command(cfg: &WgQuickConfig, iface: &str) -> Option<Cmd> {
    if cfg.interface.dns.is_empty() {
        return None;
    }
    let (servers, search): (Vec<&String>, Vec<&String>) = cfg
        .interface
        .dns
        .iter()
        .partition(|d| d.parse::<std::net::IpAddr>().is_ok());
    let mut input = String::new();
    for s in servers {
        input.push_str(&format!("nameserver {s}\n"));
    }
    if !search.is_empty() {
        let names: Vec<&str> = search.iter().map(|s| s.as_str()).collect();
        input.push_str(&format!("search {}\n", names.join(" ")));
    }
    Some(Cmd {
        program: "resolvconf".into(),
        args: vec![
            "-a".into(),
            format!("tun.{iface}"),
            "-m".into(),
            "0".into(),
            "-x".into(),
        ],
        stdin: Some(input),
    })
}

pub fn dns_teardown_command(iface: &str) -> Cmd {
    Cmd::new("resolvconf", &["-d", &format!("tun.{iface}"), "-f"])
}

pub fn delete_link_command(iface: &str) -> Cmd {
    Cmd::ip(&["link", "delete", "dev", iface])
}

/// Whether a network interface called `iface` exists in this namespace.
pub fn link_exists(iface: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(iface).exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const A: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
    const B: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

    fn cfg(extra_iface: &str, allowed: &str) -> WgQuickConfig {
        WgQuickConfig::parse(
            Path::new("t.conf"),
            &format!(
                "[Interface]\nPrivateKey = {A}\nAddress = 10.77.0.1/24\n{extra_iface}\n\
                 [Peer]\nPublicKey = {B}\nAllowedIPs = {allowed}\n"
            ),
        )
        .unwrap()
    }

    fn shown(cmds: &[Cmd]) -> Vec<String> {
        cmds.iter().map(Cmd::display).collect()
    }

    #[test]
    fn link_and_specific_routes() {
        let c = cfg("", "10.88.0.0/16, 10.88.1.0/24");
        assert_eq!(
            shown(&link_commands(&c, "fs0", 1420)),
            [
                "ip -4 address add 10.77.0.1/24 dev fs0",
                "ip link set mtu 1420 up dev fs0"
            ]
        );
        assert_eq!(
            shown(&route_commands(&c, "fs0", 51820)),
            [
                "ip -4 route replace 10.88.1.0/24 dev fs0",
                "ip -4 route replace 10.88.0.0/16 dev fs0"
            ]
        );
        assert!(!has_default_route(&c));
        assert!(teardown_commands(&c, 51820).is_empty());
    }

    #[test]
    fn default_route_uses_policy_routing() {
        let c = cfg("ListenPort = 51000", "0.0.0.0/0");
        assert!(has_default_route(&c));
        assert_eq!(
            shown(&route_commands(&c, "fs0", 51000)),
            [
                "ip -4 route add 0.0.0.0/0 dev fs0 table 51000",
                "ip -4 rule add not fwmark 51000 table 51000",
                "ip -4 rule add table main suppress_prefixlength 0"
            ]
        );
        let teardown = shown(&teardown_commands(&c, 51000));
        assert_eq!(teardown.len(), 4);
        // `down` deletes exactly the rules `up` added.
        for added in &shown(&route_commands(&c, "fs0", 51000))[1..] {
            assert!(
                teardown.contains(&added.replace(" add ", " delete ")),
                "{added}"
            );
        }
    }

    #[test]
    fn table_off_and_custom_table() {
        assert!(route_commands(&cfg("Table = off", "0.0.0.0/0"), "fs0", 1).is_empty());
        assert_eq!(
            shown(&route_commands(
                &cfg("Table = 1234", "10.0.0.0/8"),
                "fs0",
                1
            )),
            ["ip -4 route replace 10.0.0.0/8 dev fs0 table 1234"]
        );
    }

    #[test]
    fn dns_goes_through_resolvconf() {
        let c = cfg("DNS = 10.77.0.53, corp.example", "10.0.0.0/8");
        let cmd = dns_command(&c, "fs0").unwrap();
        assert_eq!(cmd.display(), "resolvconf -a tun.fs0 -m 0 -x");
        assert_eq!(
            cmd.stdin.unwrap(),
            "nameserver 10.77.0.53\nsearch corp.example\n"
        );
        assert!(dns_command(&cfg("", "10.0.0.0/8"), "fs0").is_none());
    }

    #[test]
    fn hooks_substitute_interface() {
        assert_eq!(Cmd::shell("echo %i", "fs0").args, ["-c", "echo fs0"]);
    }
}
