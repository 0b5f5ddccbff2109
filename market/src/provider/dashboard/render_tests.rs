use super::*;
use crate::provider::dashboard::fixtures::{inputs, NOW_MS};
use flowshield_proto::WgPublicKey;

fn render(i: &Inputs) -> String {
    page(&DashboardView::build(i), 0)
}

/// The `<section id=…>` element's text.
fn section<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!("<section class=\"panel\" id=\"{id}\""))
        .unwrap_or_else(|| panic!("no panel {id}"));
    let end = page[start..].find("</section>").unwrap() + start;
    &page[start..end]
}

#[test]
fn values_from_outside_are_escaped() {
    let mut i = inputs();
    let hostile = r#"<script>alert("x")</script> & <img src=x onerror=alert(1)>"#;
    i.reputation = Panel::unavailable(format!("http://fn answered 500: {hostile}"));
    i.traffic = Panel::unavailable(hostile);
    let page = render(&i);
    assert!(!page.contains("<script"), "{page}");
    assert!(!page.contains("<img"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img"));

    let mut view = DashboardView::build(&inputs());
    if let Panel::Ok { data } = &mut view.certificate {
        data.subject = r#"CN="><b>owned</b>"#.into();
    }
    let page = page_of(&view);
    assert!(!page.contains("<b>owned"));
    assert!(page.contains("CN=&quot;&gt;&lt;b&gt;owned&lt;/b&gt;"));
}

fn page_of(view: &DashboardView) -> String {
    page(view, 0)
}

#[test]
fn degraded_panels_say_why_and_the_rest_render() {
    let mut i = inputs();
    i.traffic = Panel::unavailable("UAPI flowshield0: connection refused");
    i.reputation = Panel::not_configured("no fullnode_url in [dashboard]");
    i.certificate = Panel::not_configured("no certificate configured");
    let page = render(&i);
    let traffic = section(&page, "traffic");
    assert!(traffic.contains(r#"data-state="unavailable""#));
    assert!(traffic.contains("Unavailable: </strong>UAPI flowshield0: connection refused"));
    let reputation = section(&page, "reputation");
    assert!(reputation.contains(r#"data-state="not_configured""#));
    assert!(reputation.contains("no fullnode_url in [dashboard]"));
    assert!(section(&page, "certificate").contains("no certificate configured"));
    for ok in ["identity", "sessions", "earnings", "stake"] {
        assert!(
            section(&page, ok).contains(r#"data-state="ok""#),
            "{ok} still renders"
        );
    }
    assert!(section(&page, "sessions").contains(r#"<tr data-order="7">"#));
}

#[test]
fn amounts_bytes_and_times_carry_exact_values() {
    let page = render(&inputs());
    let stake = section(&page, "stake");
    assert!(stake.contains(
        r#"<span class="amount" data-wei="1000000000000000000" title="1000000000000000000 wei = 1 ETH">1 ETH</span>"#
    ), "{stake}");
    assert!(stake.contains("active"));
    let earnings = section(&page, "earnings");
    assert!(earnings.contains(r#"data-wei="41000""#), "{earnings}");
    assert!(earnings.contains(r#"data-wei="12345""#));
    assert!(earnings.contains("from 2 sessions"));
    let traffic = section(&page, "traffic");
    assert!(
        traffic.contains(
            r#"<span class="bytes" data-bytes="4500000" title="4500000 bytes">4.3 MiB</span>"#
        ),
        "{traffic}"
    );
    assert!(
        traffic.contains("peer missing from the data plane"),
        "session 8"
    );
    assert!(traffic.contains("1 other peer(s)"));
    let sessions = section(&page, "sessions");
    assert!(sessions.contains(&format!(r#"data-ms="{}""#, NOW_MS - 120_000)));
    assert!(sessions.contains("2 min ago"));
    assert!(sessions.contains("none yet"), "session 8 has no voucher");
    assert!(sessions.contains(&WgPublicKey([2; 32]).to_string()));
    let reputation = section(&page, "reputation");
    assert!(reputation.contains(">0.65<"));
    assert!(reputation.contains("3 reports (2 passed) over 2 periods, latest period 41"));
    let cert = section(&page, "certificate");
    assert!(cert.contains(r#"data-verdict="valid""#));
    assert!(cert.contains("not revoked"));
}

#[test]
fn the_page_is_self_contained_and_reloads_only_when_asked() {
    let view = DashboardView::build(&inputs());
    let quiet = page(&view, 0);
    let reloading = page(&view, 5);
    assert!(!quiet.contains("http-equiv"));
    assert!(reloading.contains(r#"<meta http-equiv="refresh" content="5">"#));
    assert!(reloading.contains("refreshes every 5 s"));
    for page in [&quiet, &reloading] {
        assert!(page.starts_with("<!DOCTYPE html>"));
        for external in ["<script", "<link", " src=", "url(", "@import", "<iframe"] {
            assert!(!page.contains(external), "{external}");
        }
    }
}

#[test]
fn an_empty_provider_page_says_there_are_no_sessions() {
    let mut i = inputs();
    if let Panel::Ok { data } = &mut i.sessions {
        data.sessions.clear();
    }
    let page = render(&i);
    assert!(section(&page, "sessions").contains("No open sessions."));
    assert!(section(&page, "traffic").contains("No open sessions."));
}

#[test]
fn the_exit_panel_shows_the_policy_and_the_rate_in_force() {
    let page = render(&inputs());
    let exit = section(&page, "exit");
    assert!(exit.contains(r#"data-state="ok""#), "{exit}");
    assert!(exit.contains("egress filter on"), "{exit}");
    assert!(exit.contains(r#"data-field="uplink">eth0<"#), "{exit}");
    assert!(exit.contains("10.77.0.0/24"), "{exit}");
    for range in [
        "169.254.0.0/16",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "fc00::/7",
    ] {
        assert!(exit.contains(range), "{range} not shown: {exit}");
    }
    assert!(
        exit.contains(r#"data-field="allowed_exceptions">192.168.7.0/24<"#),
        "{exit}"
    );
    assert!(
        exit.contains(r#"data-field="blocked_ports">25, 6667<"#),
        "{exit}"
    );
    assert!(
        exit.contains(r#"data-field="smtp"><span class="badge good">blocked"#),
        "{exit}"
    );
    assert!(
        exit.contains(r#"data-kbit="5000">5 Mbit/s</span> guaranteed, up to 20 Mbit/s each"#),
        "{exit}"
    );

    let mut off = inputs();
    off.exit = Panel::ok(crate::provider::dashboard::exit::ExitInput {
        egress: None,
        shaping: None,
    });
    let page = render(&off);
    let exit = section(&page, "exit");
    assert!(exit.contains("egress filter off"), "{exit}");
    assert!(exit.contains("not shaped"), "{exit}");
    assert!(!exit.contains("169.254.0.0/16"), "{exit}");
}
