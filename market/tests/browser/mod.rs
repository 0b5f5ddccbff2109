//! Headless Chromium for end-to-end tests: Debian's `chromedriver` and
//! `chromium` started inside a test's network namespace with a fresh
//! profile, driven over WebDriver (fantoccini), plus full-page screenshots
//! (DevTools `Page.captureScreenshot` through chromedriver) and a check
//! that a screenshot is real rendered content.
//!
//! Everything started here is killed, and the profile removed, when the
//! [`Browser`] is dropped — also when the test fails.

#![allow(dead_code)]

use anyhow::{ensure, Context, Result};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const DRIVER_PORT: u16 = 9515;
/// The browser window; screenshots cover the whole page regardless.
pub const WINDOW: (u32, u32) = (1280, 900);
const WAIT: Duration = Duration::from_secs(60);

/// chromedriver (and the chromium it starts) in a namespace, with a fresh
/// profile. Dropping it kills every process it started and removes the
/// profile, also when the test fails.
pub struct Browser {
    driver: Child,
    dir: tempfile::TempDir,
}

impl Browser {
    pub fn start(ns: &flowshield_e2e::netns::Netns) -> Result<Self> {
        for program in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            ensure!(
                Path::new(program).exists(),
                "{program} is missing: run scripts/setup.sh (Debian packages chromium, chromium-driver)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("flowshield-chromium-")
            .tempdir()?;
        std::fs::create_dir(dir.path().join("profile"))?;
        let driver = ns
            .command("/usr/bin/chromedriver")
            .arg(format!("--port={DRIVER_PORT}"))
            .arg(format!(
                "--log-path={}",
                dir.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting chromedriver")?;
        Ok(Self { driver, dir })
    }

    fn capabilities(&self) -> serde_json::Map<String, Value> {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--force-device-scale-factor=1",
            "--hide-scrollbars",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([
            format!(
                "--user-data-dir={}",
                self.dir.path().join("profile").display()
            ),
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
        ])
        .collect::<Vec<_>>();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
        });
        caps.as_object().cloned().unwrap_or_default()
    }

    /// A WebDriver session, once chromedriver answers (call from inside
    /// the namespace).
    pub async fn connect(&self) -> Result<Client> {
        let status = format!("http://127.0.0.1:{DRIVER_PORT}/status");
        let deadline = Instant::now() + WAIT;
        loop {
            let ready = reqwest::get(&status).await.ok().map(|r| r.json::<Value>());
            if let Some(body) = ready {
                if body.await.is_ok_and(|v| v["value"]["ready"] == true) {
                    break;
                }
            }
            ensure!(
                Instant::now() < deadline,
                "chromedriver not ready within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        Ok(ClientBuilder::new(connector)
            .capabilities(self.capabilities())
            .connect(&format!("http://127.0.0.1:{DRIVER_PORT}"))
            .await?)
    }
}

/// Processes descending from `root` (by parent pid, from /proc).
fn descendants(root: u32) -> Vec<i32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ppid ...`; comm may hold spaces.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((pid, ppid));
        }
    }
    let mut found = vec![root as i32];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parent_of
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found
}

impl Drop for Browser {
    fn drop(&mut self) {
        for pid in descendants(self.driver.id()).into_iter().rev() {
            // SAFETY: kill(2) on chromedriver and the processes it started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = self.driver.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("chromedriver.log"))
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!(
                "--- chromedriver log (last lines) ---\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

/// `POST /session/{id}/goog/cdp/execute`: a DevTools command through chromedriver.
#[derive(Debug)]
pub struct Cdp {
    pub cmd: &'static str,
    pub params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// Decodes a screenshot and checks it is a page really rendered: `size`
/// in pixels, the page's `header_rgb` at the top left, many colours, and
/// `region` (x, y, width, height) holding content, not a uniform box.
pub fn check_screenshot(
    png_bytes: &[u8],
    size: (u32, u32),
    header_rgb: [u8; 3],
    region: [u32; 4],
) -> Result<()> {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().context("PNG size")?];
    let info = reader.next_frame(&mut buf)?;
    ensure!(
        (info.width, info.height) == size,
        "screenshot is {}x{}, the page {}x{}",
        info.width,
        info.height,
        size.0,
        size.1
    );
    ensure!(
        info.bit_depth == png::BitDepth::Eight,
        "{:?}",
        info.bit_depth
    );
    let channels = info.color_type.samples();
    ensure!(channels >= 3, "{:?}", info.color_type);
    let pixel = |x: u32, y: u32| {
        let at = (y as usize * info.line_size) + x as usize * channels;
        [buf[at], buf[at + 1], buf[at + 2]]
    };
    let colours = |x0: u32, y0: u32, w: u32, h: u32| {
        let mut count = std::collections::HashMap::new();
        for y in y0..(y0 + h).min(info.height) {
            for x in x0..(x0 + w).min(info.width) {
                *count.entry(pixel(x, y)).or_insert(0u64) += 1;
            }
        }
        count
    };
    // The page's own colours at its top-left corner: its CSS was applied.
    let [r, g, b] = pixel(4, 4);
    let [er, eg, eb] = header_rgb;
    ensure!(
        r.abs_diff(er) < 8 && g.abs_diff(eg) < 8 && b.abs_diff(eb) < 8,
        "top-left pixel is {r},{g},{b}, not the page's {er},{eg},{eb}"
    );
    let all = colours(0, 0, info.width, info.height);
    ensure!(all.len() >= 64, "only {} colours: blank page?", all.len());
    // The region (e.g. a table): text on a background, not a uniform box.
    let [x, y, w, h] = region;
    ensure!(w > 200 && h > 40, "region is only {w}x{h}");
    let region = colours(x, y, w, h);
    let total: u64 = region.values().sum();
    let background = region.values().copied().max().unwrap_or(0);
    let ink = total - background;
    eprintln!(
        "screenshot {}x{}: {} colours; region {w}x{h} at {x},{y}: {} colours, {:.1} % not background",
        info.width,
        info.height,
        all.len(),
        region.len(),
        100.0 * ink as f64 / total.max(1) as f64
    );
    ensure!(
        region.len() >= 16,
        "sessions table has {} colours",
        region.len()
    );
    ensure!(ink * 50 >= total, "sessions table is almost uniform");
    Ok(())
}

pub async fn find_attr(c: &Client, css: &str, name: &str) -> Result<String> {
    c.find(Locator::Css(css))
        .await
        .with_context(|| format!("no element {css}"))?
        .attr(name)
        .await?
        .with_context(|| format!("{css} has no {name}"))
}

pub async fn find_text(c: &Client, css: &str) -> Result<String> {
    Ok(c.find(Locator::Css(css))
        .await
        .with_context(|| format!("no element {css}"))?
        .text()
        .await?)
}

/// The page's full size and the box of the first element matching `css`
/// (x, y, width, height in CSS pixels, from the top of the page).
pub async fn geometry(c: &Client, css: &str) -> Result<((u32, u32), [u32; 4])> {
    let script = "const d = document.documentElement;
         const e = document.querySelector(arguments[0]);
         if (!e) { return null; }
         const r = e.getBoundingClientRect();
         return [d.scrollWidth, d.scrollHeight,
                 Math.floor(r.left + window.scrollX), Math.floor(r.top + window.scrollY),
                 Math.floor(r.width), Math.floor(r.height)];";
    let v = c.execute(script, vec![json!(css)]).await?;
    let n = |i: usize| {
        v.get(i)
            .and_then(Value::as_u64)
            .and_then(|x| u32::try_from(x).ok())
            .with_context(|| format!("no geometry for {css}: {v}"))
    };
    Ok(((n(0)?, n(1)?), [n(2)?, n(3)?, n(4)?, n(5)?]))
}

/// A PNG of the whole page (`size` from [`geometry`]), not only the window.
pub async fn full_page_png(c: &Client, size: (u32, u32)) -> Result<Vec<u8>> {
    let shot = c
        .issue_cmd(Cdp {
            cmd: "Page.captureScreenshot",
            params: json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": { "x": 0, "y": 0, "width": size.0, "height": size.1, "scale": 1 },
            }),
        })
        .await?;
    let data = shot
        .get("data")
        .or_else(|| shot["value"].get("data"))
        .and_then(Value::as_str)
        .context("no screenshot data")?;
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::STANDARD.decode(data)?)
}
