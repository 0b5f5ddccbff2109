use super::*;
use std::os::unix::fs::PermissionsExt;

fn open() -> Access {
    Access::new(&[], None).unwrap()
}

#[test]
fn the_listen_address_ip_literals_and_localhost_pass() {
    let open = open();
    for host in [
        // The packaged listen address, with and without its port.
        "127.0.0.1:8090",
        "127.0.0.1",
        "[::1]:8090",
        "[::1]",
        // An SSH tunnel's local port; the host's address for a 0.0.0.0 listener.
        "127.0.0.1:9000",
        "10.0.0.5:8090",
        "[2001:db8::5]:8090",
        "localhost:9000",
        "localhost",
        "LOCALHOST",
    ] {
        assert!(open.host_allowed(Some(host)), "{host} refused");
    }
}

/// What a DNS-rebinding page (or a sloppy parser) could put in `Host`.
#[test]
fn rebound_names_and_malformed_hosts_are_refused() {
    let open = open();
    for host in [
        "evil.example:8090",
        "evil.example",
        "127.0.0.1.evil.example",
        "localhost.evil.example",
        "localhost.",
        "[::1]evil.example",
        "[::1].evil.example:8090",
        "evil.example@127.0.0.1",
        "127.0.0.1@evil.example",
        "127.0.0.1:8090/evil",
        "127.0.0.1:99999",
        "127.0.0.1:",
        "::1",
        "2130706433",
        "127.1",
        "",
        " ",
    ] {
        assert!(!open.host_allowed(Some(host)), "{host:?} accepted");
    }
    assert!(!open.host_allowed(None), "no Host header accepted");
}

#[test]
fn listed_names_pass_in_any_case_and_with_any_port() {
    let listed = Access::new(&["Dash.Example.net:443".into()], None).unwrap();
    assert!(listed.host_allowed(Some("dash.example.net")));
    assert!(listed.host_allowed(Some("DASH.example.NET:8443")));
    assert!(!listed.host_allowed(Some("example.net")));
    assert!(!listed.host_allowed(Some("x.dash.example.net")));
    assert!(!listed.host_allowed(Some("dash.example.net.evil.example")));
}

#[test]
fn allowed_hosts_entries_that_are_not_names_are_refused_by_index() {
    for bad in [
        "*",
        "*.example.net",
        "",
        "http://dash.example.net",
        "dash.example.net/path",
        "user@dash.example.net",
        "dash example.net",
        "-dash.example.net",
    ] {
        let entries = vec!["ok.example.net".to_string(), bad.to_string()];
        let (index, e) = Access::new(&entries, None).expect_err(bad);
        assert_eq!(index, 1, "{bad}");
        assert!(e.to_string().contains(&format!("'{bad}'")), "{e}");
    }
}

#[test]
fn the_token_is_required_exactly_when_configured() {
    assert!(open().authorized(None));
    assert!(!open().token_required());
    let token = "s3cret-s3cret-s3cret";
    let guarded = Access::new(&[], Some(token)).unwrap();
    assert!(guarded.token_required());
    assert!(guarded.authorized(Some(&format!("Bearer {token}"))));
    assert!(guarded.authorized(Some(&format!("bearer {token}"))));
    for header in [
        None,
        Some("Bearer wrong".to_string()),
        Some(token.to_string()),
        Some(format!("Basic {token}")),
        Some(format!("Bearer {token}x")),
        Some(format!("Bearer {}", &token[1..])),
        Some("Bearer ".into()),
        Some("Bearer".into()),
    ] {
        assert!(!guarded.authorized(header.as_deref()), "{header:?}");
    }
}

#[test]
fn debug_output_never_shows_the_token() {
    let guarded = Access::new(&[], Some("s3cret-s3cret-s3cret")).unwrap();
    let shown = format!("{guarded:?}");
    assert!(shown.contains("token_required: true"), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
    let digest = hex::encode(digest("s3cret-s3cret-s3cret"));
    assert!(!shown.contains(&digest[..8]), "{shown}");
}

#[test]
fn a_token_file_others_can_read_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard.token");
    std::fs::write(&path, "s3cret-s3cret-s3cret\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = read_token_file(&path).unwrap_err();
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    assert!(
        matches!(e, TokenFileError::Permissions { mode: 0o644, .. }),
        "{e}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(matches!(
        read_token_file(&path),
        Err(TokenFileError::Permissions { mode: 0o640, .. })
    ));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(read_token_file(&path).unwrap(), "s3cret-s3cret-s3cret");
}

#[test]
fn short_malformed_or_missing_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard.token");
    for text in ["  \n", "short\n", "has a space in it, long enough\n"] {
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = read_token_file(&path).unwrap_err();
        assert!(
            matches!(e, TokenFileError::BadToken { .. }),
            "{text:?}: {e}"
        );
        assert!(e.to_string().contains("dashboard.token"), "{e}");
    }
    let missing = dir.path().join("absent.token");
    let e = read_token_file(&missing).unwrap_err();
    assert!(matches!(e, TokenFileError::Read { .. }), "{e}");
    assert!(e.to_string().contains("absent.token"), "{e}");
    let e = read_token_file(dir.path()).unwrap_err();
    assert!(matches!(e, TokenFileError::NotAFile { .. }), "{e}");
}
