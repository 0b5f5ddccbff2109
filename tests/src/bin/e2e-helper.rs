//! Traffic tools the end-to-end tests run inside network namespaces:
//!
//! - `udp-send FILE DST SRC`: sends the datagrams framed in FILE (u32
//!   big-endian length, then bytes) from SRC to DST.
//! - `tcp-echo-server ADDR TIMEOUT_SECS`: accepts one connection, echoes it
//!   until EOF, prints `listening` once bound.
//! - `tcp-echo-client ADDR LEN TIMEOUT_SECS`: sends LEN pseudo-random bytes,
//!   checks they come back unchanged, prints `echoed LEN`.
//!
//! Every mode exits by itself within its timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["udp-send", file, dst, src] => udp_send(file, dst, src),
        ["tcp-echo-server", addr, timeout] => tcp_echo_server(addr, timeout),
        ["tcp-echo-client", addr, len, timeout] => tcp_echo_client(addr, len, timeout),
        _ => Err("usage: e2e-helper udp-send FILE DST SRC | tcp-echo-server ADDR SECS | tcp-echo-client ADDR LEN SECS".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("e2e-helper: {err}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Ends the process after `secs`, whatever it is blocked on.
fn watchdog(secs: &str) -> Result<()> {
    let secs: u64 = secs.parse()?;
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(secs));
        eprintln!("e2e-helper: timed out after {secs} s");
        std::process::exit(3);
    });
    Ok(())
}

fn udp_send(file: &str, dst: &str, src: &str) -> Result<()> {
    let data = std::fs::read(file)?;
    let dst: SocketAddr = dst.parse()?;
    let socket = UdpSocket::bind(src.parse::<SocketAddr>()?)?;
    let mut rest = data.as_slice();
    let mut sent = 0;
    while !rest.is_empty() {
        let (len, tail) = rest.split_at(4);
        let len = u32::from_be_bytes(len.try_into()?) as usize;
        let (datagram, tail) = tail.split_at(len);
        let n = socket.send_to(datagram, dst)?;
        if n != len {
            return Err(format!("sent {n} of {len} bytes").into());
        }
        sent += 1;
        rest = tail;
        // Pace the datagrams a little so no receive buffer overflows.
        std::thread::sleep(Duration::from_millis(2));
    }
    println!("sent {sent}");
    Ok(())
}

fn tcp_echo_server(addr: &str, timeout: &str) -> Result<()> {
    watchdog(timeout)?;
    let listener = TcpListener::bind(addr)?;
    println!("listening");
    std::io::stdout().flush()?;
    let (mut stream, _) = listener.accept()?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        stream.write_all(&buf[..n])?;
        total += n;
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    println!("echoed {total}");
    Ok(())
}

fn pattern(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x0123_4567_89ab_cdef;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn tcp_echo_client(addr: &str, len: &str, timeout: &str) -> Result<()> {
    watchdog(timeout)?;
    let len: usize = len.parse()?;
    let addr: SocketAddr = addr.parse()?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    let data = pattern(len);
    let mut writer = stream.try_clone()?;
    let to_send = data.clone();
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        writer.write_all(&to_send)?;
        writer.shutdown(std::net::Shutdown::Write)
    });
    let mut received = Vec::with_capacity(len);
    (&stream).read_to_end(&mut received)?;
    sender.join().map_err(|_| "sender panicked")??;
    if received.len() != len {
        return Err(format!("sent {len} bytes, {} came back", received.len()).into());
    }
    if let Some(at) = received.iter().zip(&data).position(|(a, b)| a != b) {
        return Err(format!("echoed data differs at byte {at}").into());
    }
    println!("echoed {len}");
    Ok(())
}
