//! The probe engine: one probe of one provider through a real tunnel.
//!
//! Stages: check the endpoint is routable from the probe's namespace (nothing is sent
//! otherwise), bring up a `flowshield` interface with the verifier's key and the
//! provider as only peer ([`tunnel::ProbeTunnel`]), time the handshake, ping the
//! provider's probe address (`ping -n`, numeric, bounded), fetch a bounded transfer
//! from its probe responder ([`responder`]), tear everything down. Failures on the
//! verifier's side are [`ProbeError`]s; failures of the provider (no handshake, loss,
//! slow transfer) are measured into [`Metrics`] and judged by [`crate::stats::verdict`].
//!
//! The engine is blocking (child processes, UAPI, std sockets); async callers run it
//! with `spawn_blocking`.

pub mod netns;
pub mod responder;
pub mod tunnel;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use flowshield_tunnel::key::SecretKey;

use crate::config::ProbeSettings;
use crate::error::ProbeError;
use crate::stats::{self, Metrics};
use crate::target::ProbeTarget;
use netns::Place;
use tunnel::ProbeTunnel;

/// Set once when the process is asked to stop; probes are blocking code on
/// other threads, so they look at this between steps and while they wait.
static STOP: AtomicBool = AtomicBool::new(false);

/// Abandon running probes (and refuse new ones) for the rest of the
/// process: each returns [`ProbeError::Stopped`] promptly, its helper
/// commands killed and its interface removed by the tunnel guard.
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// `Err(Stopped)` once [`request_stop`] was called.
pub fn check_stop() -> Result<(), ProbeError> {
    if STOP.load(Ordering::SeqCst) {
        Err(ProbeError::Stopped)
    } else {
        Ok(())
    }
}

/// Progress of a probe, for displays.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// Bringing up the probe interface.
    TunnelUp {
        /// Its name.
        iface: String,
    },
    /// Waiting for the handshake.
    Handshake,
    /// Handshake done after this long.
    HandshakeDone(Duration),
    /// Pinging `count` times.
    Ping {
        /// Echo requests.
        count: u32,
    },
    /// Fetching this many bytes.
    Transfer {
        /// Bytes requested.
        bytes: u64,
    },
    /// Done; the interface is gone.
    TornDown,
}

/// Probe `target` once. `progress` sees each [`Stage`].
pub fn probe(
    settings: &ProbeSettings,
    key: &SecretKey,
    target: &ProbeTarget,
    progress: &mut dyn FnMut(&Stage),
) -> Result<Metrics, ProbeError> {
    let peer_key = target.wg_public_key.ok_or_else(|| ProbeError::Command {
        command: "probe".into(),
        message: format!("target {} has no WireGuard key", target.name),
    })?;
    check_stop()?;
    let place = Place::new(settings.netns.clone());
    ProbeTunnel::preflight(&place, target.endpoint)?;
    progress(&Stage::TunnelUp {
        iface: settings.interface.clone(),
    });
    let result = (|| {
        let tunnel = ProbeTunnel::up(settings, &place, key, target, peer_key)?;
        measure(settings, &place, &tunnel, target, progress)
    })();
    // The tunnel guard was dropped when the closure returned, error or not.
    progress(&Stage::TornDown);
    result
}

fn measure(
    settings: &ProbeSettings,
    place: &Place,
    tunnel: &ProbeTunnel,
    target: &ProbeTarget,
    progress: &mut dyn FnMut(&Stage),
) -> Result<Metrics, ProbeError> {
    progress(&Stage::Handshake);
    let handshake = match tunnel.handshake(target.probe_address, settings.handshake_timeout) {
        Ok(d) => d,
        Err(ProbeError::Timeout { what, after }) => {
            return Ok(Metrics::unreachable(format!(
                "{what} did not complete within {after:?}"
            )))
        }
        Err(e) => return Err(e),
    };
    progress(&Stage::HandshakeDone(handshake));
    let mut metrics = Metrics::unreachable("");
    metrics.error = None;
    metrics.handshake_ms = Some(handshake.as_secs_f64() * 1e3);

    check_stop()?;
    progress(&Stage::Ping {
        count: settings.ping_count,
    });
    let samples = ping(settings, place, target)?;
    metrics.set_ping(&samples);

    check_stop()?;
    progress(&Stage::Transfer {
        bytes: settings.transfer_bytes,
    });
    let addr = SocketAddr::new(target.probe_address, target.responder_port);
    let (wanted, cap) = (settings.transfer_bytes, settings.transfer_timeout);
    let started = Instant::now();
    match place.enter(move || responder::fetch(addr, wanted, cap))? {
        Ok(t) => {
            metrics.transfer_bytes = t.bytes;
            metrics.transfer_ms = t.elapsed.as_secs_f64() * 1e3;
            metrics.transfer_capped = t.capped;
            metrics.throughput_mbps = Some(stats::throughput_mbps(t.bytes, t.elapsed));
        }
        Err(e) => {
            // The provider did not serve the transfer: measured as zero throughput.
            metrics.transfer_ms = started.elapsed().as_secs_f64() * 1e3;
            metrics.throughput_mbps = Some(0.0);
            metrics.error = Some(format!("transfer from {addr}: {e}"));
        }
    }
    Ok(metrics)
}

fn ping(
    settings: &ProbeSettings,
    place: &Place,
    target: &ProbeTarget,
) -> Result<stats::PingSamples, ProbeError> {
    let count = settings.ping_count;
    let interval = settings.ping_interval.as_secs_f64();
    // Whole run bounded: every request sent plus one second for the last reply.
    let deadline = (interval * f64::from(count)).ceil() as u64 + 1;
    let mut cmd = place.command("ping");
    cmd.args([
        "-n",
        "-c",
        &count.to_string(),
        "-i",
        &format!("{interval:.3}"),
        "-W",
        "1",
        "-w",
        &deadline.to_string(),
        &target.probe_address.to_string(),
    ]);
    // ping exits 1 when replies are missing: that is a measurement, not an error.
    let (status, stdout, stderr) =
        netns::run_status_stoppable(&mut cmd, Duration::from_secs(deadline + 5))?;
    if status.code() == Some(2) || !stdout.starts_with("PING") {
        return Err(ProbeError::Command {
            command: format!("ping {}", target.probe_address),
            message: format!("{status}: {}", stderr.trim()),
        });
    }
    Ok(stats::parse_ping_output(&stdout, count))
}
