use super::*;
use clap::Parser;
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    cmd: Sub,
}

#[derive(clap::Subcommand)]
enum Sub {
    Run { name: String },
}

fn parse(args: &[&str]) -> LogArgs {
    let mut all = vec!["prog"];
    all.extend_from_slice(args);
    Cli::try_parse_from(all).expect("valid arguments").log
}

#[test]
fn flags_are_global_and_counted() {
    let log = parse(&["run", "x", "-vv", "--log-format", "json"]);
    assert_eq!(log.verbose, 2);
    assert_eq!(log.log_format, LogFormat::Json);
    let log = parse(&["--verbose", "run", "x"]);
    assert_eq!(log.verbose, 1);
    assert_eq!(log.log_format, LogFormat::Human);
}

#[test]
fn unknown_format_is_refused_by_name() {
    let err = Cli::try_parse_from(["prog", "--log-format", "xml", "run", "x"])
        .err()
        .expect("xml is not a format")
        .to_string();
    assert!(err.contains("--log-format"), "{err}");
    assert!(err.contains("xml"), "{err}");
}

#[test]
fn precedence_flag_then_env_then_verbosity() {
    let mut log = parse(&["-v", "run", "x"]);
    let (d, s) = log.directive(None);
    assert_eq!(s, Source::Verbosity);
    assert!(d.starts_with("info,"), "{d}");
    assert!(d.contains("flowshield_market=debug"), "{d}");
    assert_eq!(log.directive(Some("warn")), ("warn".into(), Source::Env));
    assert_eq!(log.directive(Some("  ")).1, Source::Verbosity);
    log.log = Some("error".into());
    assert_eq!(log.directive(Some("warn")), ("error".into(), Source::Flag));
    assert_eq!(parse(&["-vvvv", "run", "x"]).directive(None).0, "trace");
}

#[test]
fn bad_filters_name_their_source() {
    let mut log = parse(&["run", "x"]);
    let err = log.filter(Some("flowshield=nonsense")).unwrap_err();
    assert!(err.to_string().starts_with("RUST_LOG:"), "{err}");
    log.log = Some("a=b=c".into());
    let err = log.filter(None).unwrap_err();
    assert!(err.to_string().starts_with("--log:"), "{err}");
}

#[test]
fn to_args_round_trips() {
    let original = parse(&["-vv", "--log", "warn", "--log-format", "json", "run", "x"]);
    let mut args: Vec<String> = vec!["prog".into()];
    args.extend(
        original
            .to_args()
            .into_iter()
            .map(|a| a.into_string().expect("utf-8")),
    );
    args.extend(["run".into(), "x".into()]);
    let again = Cli::try_parse_from(args)
        .expect("forwarded flags parse")
        .log;
    assert_eq!(again.verbose, 2);
    assert_eq!(again.log.as_deref(), Some("warn"));
    assert_eq!(again.log_format, LogFormat::Json);
    assert!(parse(&["run", "x"]).to_args().is_empty());
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// One global subscriber per process: this is the only test that installs it.
#[test]
fn json_events_are_one_object_per_line_with_fields_and_level_filtering() {
    let buffer = Buffer::default();
    let log = parse(&["--log-format", "json", "run", "x"]);
    log.try_init_with(None, buffer.clone(), false)
        .expect("first subscriber");
    let span = tracing::info_span!("peer", peer = "abc");
    span.in_scope(|| {
        tracing::info!(bytes = 42u64, "handshake done");
        tracing::debug!("hidden at info");
    });
    let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "debug filtered out at info: {text}");
    let event: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON object");
    assert_eq!(event["level"], "INFO");
    assert_eq!(event["fields"]["message"], "handshake done");
    assert_eq!(event["fields"]["bytes"], 42);
    assert_eq!(event["span"]["peer"], "abc");
    assert!(matches!(
        log.try_init_with(None, buffer, false),
        Err(LogError::AlreadySet)
    ));
}
