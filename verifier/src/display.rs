//! Human output of `flowshield-verifier probe`: progress lines (stderr) and a result
//! table (stdout).

use comfy_table::{presets::UTF8_FULL, Table};

use crate::judge::Basis;
use crate::probe::Stage;
use crate::verifier::{ChainOutcome, ProbeResult};

/// One progress line for a stage.
pub fn stage_line(stage: &Stage) -> String {
    match stage {
        Stage::TunnelUp { iface } => format!("[1/5] bringing up probe interface {iface}"),
        Stage::Handshake => "[2/5] waiting for the WireGuard handshake".into(),
        Stage::HandshakeDone(d) => {
            format!("      handshake done in {:.1} ms", d.as_secs_f64() * 1e3)
        }
        Stage::Ping { count } => format!("[3/5] measuring RTT and loss ({count} echo requests)"),
        Stage::Transfer { bytes } => {
            format!("[4/5] measuring throughput ({} KiB transfer)", bytes / 1024)
        }
        Stage::TornDown => "[5/5] probe interface removed".into(),
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2} ms"))
}

/// The result as a table.
pub fn result_table(r: &ProbeResult) -> String {
    let q = r.basis.quality();
    let m = &r.metrics;
    let mut table = Table::new();
    table.load_preset(UTF8_FULL);
    let yardstick = match r.basis {
        Basis::Promise(_) => "promised (chain)",
        Basis::Config(_) => "config (no promise)",
        Basis::Reachability => "reachability only",
    };
    table.set_header(vec!["metric", "measured", yardstick]);
    table.add_row(vec![
        "provider".to_string(),
        format!("{} ({:#x})", r.target.name, r.target.provider),
        String::new(),
    ]);
    table.add_row(vec![
        "handshake".to_string(),
        ms(m.handshake_ms),
        String::new(),
    ]);
    table.add_row(vec![
        "RTT p50 / p90 / max".to_string(),
        format!(
            "{} / {} / {}",
            ms(m.rtt_p50_ms),
            ms(m.rtt_p90_ms),
            ms(m.rtt_max_ms)
        ),
        format!("<= {:.1} ms (p50)", q.max_rtt_ms),
    ]);
    table.add_row(vec![
        "loss".to_string(),
        format!(
            "{:.1} % ({}/{} answered)",
            m.loss_pct, m.ping_received, m.ping_sent
        ),
        format!("<= {:.1} %", q.max_loss_pct),
    ]);
    table.add_row(vec![
        "throughput".to_string(),
        match m.throughput_mbps {
            Some(t) => format!(
                "{t:.2} Mbit/s ({} KiB in {:.0} ms{})",
                m.transfer_bytes / 1024,
                m.transfer_ms,
                if m.transfer_capped { ", capped" } else { "" }
            ),
            None => "-".into(),
        },
        format!(">= {:.1} Mbit/s", q.min_throughput_mbps),
    ]);
    let verdict = if r.verdict.passed {
        "PASS".to_string()
    } else {
        format!("FAIL: {}", r.verdict.reasons.join("; "))
    };
    table.add_row(vec!["verdict".to_string(), verdict, String::new()]);
    let chain = match &r.chain {
        ChainOutcome::NoChain => "no chain configured".to_string(),
        ChainOutcome::NotNeeded => "not needed (passed)".to_string(),
        ChainOutcome::Waiting { run, needed } => {
            format!("not yet: {run} of {needed} consecutive failing probes")
        }
        ChainOutcome::NoPromise => "never (no quality promise on chain)".into(),
        ChainOutcome::Submitted(tx) => format!("reported, tx {tx}"),
        ChainOutcome::AlreadyReportedLocally => "already reported this period (local)".into(),
        ChainOutcome::AlreadyOnChain => "already reported this period (chain)".into(),
        ChainOutcome::Failed(e) => format!("report failed: {e}"),
    };
    table.add_row(vec!["on chain".to_string(), chain, String::new()]);
    let delivered = r.deliveries.iter().filter(|d| d.delivered).count();
    table.add_row(vec![
        "fullnodes".to_string(),
        format!("{delivered}/{} delivered", r.deliveries.len()),
        String::new(),
    ]);
    table.to_string()
}
