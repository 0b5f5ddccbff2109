//! How the dashboard writes amounts, byte counts and times for people
//! (sans-IO). Exact values travel beside these in the page's `title` and
//! `data-*` attributes and in `/api/status`.

use flowshield_chain::alloy::primitives::U256;

/// Wei per ether.
const WEI_PER_ETH: u64 = 1_000_000_000_000_000_000;
/// Decimals shown on the page (the exact amount is in the title).
const SHOWN_DECIMALS: usize = 6;

/// `wei` as an exact decimal number of ether, without trailing zeros:
/// `1500000000000000000` → `1.5`, `1` → `0.000000000000000001`.
pub fn eth_exact(wei: U256) -> String {
    let unit = U256::from(WEI_PER_ETH);
    let whole = wei / unit;
    let frac = wei % unit;
    if frac.is_zero() {
        return whole.to_string();
    }
    let digits = format!("{:0>18}", frac.to_string());
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// An exact ether amount ([`eth_exact`]'s text) for the page: at most six
/// decimals (cut, not rounded, so the page never shows more than there
/// is), `<0.000001` for dust.
pub fn eth_short(exact: &str) -> String {
    let Some((whole, frac)) = exact.split_once('.') else {
        return format!("{exact} ETH");
    };
    let cut = frac[..frac.len().min(SHOWN_DECIMALS)].trim_end_matches('0');
    match (whole, cut.is_empty()) {
        ("0", true) => format!("<0.{}1 ETH", "0".repeat(SHOWN_DECIMALS - 1)),
        (_, true) => format!("{whole} ETH"),
        _ => format!("{whole}.{cut} ETH"),
    }
}

/// A byte count in binary units with one decimal: `4194304` → `4.0 MiB`.
pub fn bytes_short(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's `civil_from_days` for days since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// How far `then_ms` is from `now_ms`: `12 s ago`, `3 min ago`, `in 2 h`.
pub fn relative(then_ms: u64, now_ms: u64) -> String {
    let (secs, past) = if then_ms <= now_ms {
        ((now_ms - then_ms) / 1000, true)
    } else {
        ((then_ms - now_ms) / 1000, false)
    };
    let span = match secs {
        0..=1 if past => return "just now".into(),
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        7200..=172_799 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    };
    if past {
        format!("{span} ago")
    } else {
        format!("in {span}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wei(text: &str) -> U256 {
        U256::from_str_radix(text, 10).unwrap()
    }

    #[test]
    fn ether_is_exact_in_full_and_cut_on_the_page() {
        assert_eq!(eth_exact(U256::ZERO), "0");
        assert_eq!(eth_exact(wei("1500000000000000000")), "1.5");
        assert_eq!(eth_exact(U256::from(1)), "0.000000000000000001");
        assert_eq!(eth_exact(wei("12000000000000000000000")), "12000");
        let short = |w: U256| eth_short(&eth_exact(w));
        assert_eq!(short(U256::ZERO), "0 ETH");
        assert_eq!(short(wei("50000000000000000")), "0.05 ETH");
        assert_eq!(short(wei("1234567890123456789")), "1.234567 ETH");
        assert_eq!(short(wei("2000000000000000001")), "2 ETH");
        assert_eq!(short(U256::from(999)), "<0.000001 ETH");
        assert_eq!(short(U256::MAX).split('.').next().unwrap().len(), 60);
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes_short(0), "0 B");
        assert_eq!(bytes_short(1023), "1023 B");
        assert_eq!(bytes_short(1536), "1.5 KiB");
        assert_eq!(bytes_short(4 << 20), "4.0 MiB");
        assert_eq!(bytes_short(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn times_are_utc_and_relative() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_798_761_599_000), "2026-12-31 23:59:59 UTC");
        assert_eq!(relative(10_000, 10_500), "just now");
        assert_eq!(relative(0, 12_000), "12 s ago");
        assert_eq!(relative(0, 180_000), "3 min ago");
        assert_eq!(relative(0, 3 * 3_600_000), "3 h ago");
        assert_eq!(relative(0, 3 * 86_400_000), "3 d ago");
        assert_eq!(relative(90_000_000, 0), "in 25 h");
        assert_eq!(relative(5_000, 0), "in 5 s");
    }
}
