//! `wg set` argument syntax, shared by `flowshield set`:
//! `[listen-port P] [fwmark M] [private-key FILE] [peer KEY [remove]
//! [preshared-key FILE] [endpoint HOST:PORT] [persistent-keepalive N|off]
//! [allowed-ips CIDR[,CIDR...]]]...`

use crate::config::resolve_endpoint;
use crate::key::{PublicKey, SecretKey};
use crate::uapi::set::{parse_cidr, PeerUpdate};
use crate::uapi::SetRequest;

/// Why `set` arguments were rejected: the argument and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("argument '{arg}': {message}")]
pub struct ArgsError {
    pub arg: String,
    pub message: String,
}

fn err(arg: &str, message: impl Into<String>) -> ArgsError {
    ArgsError {
        arg: arg.to_string(),
        message: message.into(),
    }
}

/// Parses `args`; `read_key` reads a key file (`-` is standard input) and
/// returns its trimmed contents.
pub fn parse_set_args(
    args: &[String],
    mut read_key: impl FnMut(&str) -> Result<String, String>,
) -> Result<SetRequest, ArgsError> {
    let mut req = SetRequest::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .map(String::as_str)
                .ok_or_else(|| err(arg, "needs a value"))
        };
        let peer = req.peers.last_mut();
        match (arg.as_str(), peer) {
            ("peer", _) => {
                let text = value()?;
                let key = PublicKey::from_base64(text).map_err(|e| err(arg, e.to_string()))?;
                req.peers.push(PeerUpdate::new(key));
            }
            ("listen-port", None) => {
                let v = value()?;
                req.listen_port = Some(
                    v.parse()
                        .map_err(|_| err(arg, format!("'{v}' is not a port")))?,
                )
            }
            ("fwmark", None) => {
                let v = value()?;
                req.fwmark = Some(if v == "off" {
                    0
                } else if let Some(hex) = v.strip_prefix("0x") {
                    u32::from_str_radix(hex, 16)
                        .map_err(|_| err(arg, format!("'{v}' is not a mark")))?
                } else {
                    v.parse()
                        .map_err(|_| err(arg, format!("'{v}' is not a mark")))?
                })
            }
            ("private-key", None) => {
                let text = read_key(value()?).map_err(|m| err(arg, m))?;
                req.private_key = Some(if text.is_empty() {
                    SecretKey([0; 32])
                } else {
                    SecretKey::from_base64(&text).map_err(|e| err(arg, e.to_string()))?
                });
            }
            ("remove", Some(p)) => p.remove = true,
            ("preshared-key", Some(p)) => {
                let text = read_key(value()?).map_err(|m| err(arg, m))?;
                p.preshared_key = Some(if text.is_empty() {
                    SecretKey([0; 32])
                } else {
                    SecretKey::from_base64(&text).map_err(|e| err(arg, e.to_string()))?
                });
            }
            ("endpoint", Some(p)) => {
                p.endpoint = Some(resolve_endpoint(value()?).map_err(|m| err(arg, m))?)
            }
            ("persistent-keepalive", Some(p)) => {
                let v = value()?;
                p.persistent_keepalive = Some(if v == "off" {
                    0
                } else {
                    v.parse()
                        .map_err(|_| err(arg, format!("'{v}' is not off or seconds")))?
                })
            }
            ("allowed-ips", Some(p)) => {
                p.replace_allowed_ips = true;
                for net in value()?.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    p.allowed_ips
                        .push(parse_cidr(net).map_err(|m| err(arg, m))?);
                }
            }
            ("listen-port" | "fwmark" | "private-key", Some(_)) => {
                return Err(err(arg, "interface option after 'peer'"))
            }
            (
                "remove" | "preshared-key" | "endpoint" | "persistent-keepalive" | "allowed-ips",
                None,
            ) => return Err(err(arg, "peer option before any 'peer KEY'")),
            _ => return Err(err(arg, "unknown option")),
        }
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    const B: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

    #[test]
    fn parses_like_wg_set() {
        let key = SecretKey::generate_private().to_base64();
        let req = parse_set_args(
            &args(&format!(
                "listen-port 51820 private-key /k peer {B} endpoint 198.18.0.2:4 \
                 persistent-keepalive 25 allowed-ips 10.0.0.0/8,fd00::/64"
            )),
            |path| {
                assert_eq!(path, "/k");
                Ok(key.clone())
            },
        )
        .unwrap();
        assert_eq!(req.listen_port, Some(51820));
        assert_eq!(req.private_key.unwrap().to_base64(), key);
        let p = &req.peers[0];
        assert!(p.replace_allowed_ips);
        assert_eq!(p.allowed_ips.len(), 2);
        assert_eq!(p.persistent_keepalive, Some(25));
    }

    #[test]
    fn rejects_with_argument_named() {
        let no_files = |_: &str| Err("no files".to_string());
        for (text, arg) in [
            ("listen-port", "listen-port"),
            ("listen-port x", "listen-port"),
            ("endpoint 1.2.3.4:5", "endpoint"),
            ("peer nope", "peer"),
            ("frobnicate", "frobnicate"),
            ("private-key /missing", "private-key"),
        ] {
            let e = parse_set_args(&args(text), no_files).unwrap_err();
            assert_eq!(e.arg, arg, "{text}");
        }
        let e = parse_set_args(&args(&format!("peer {B} listen-port 5")), no_files).unwrap_err();
        assert_eq!(e.arg, "listen-port");
    }
}
