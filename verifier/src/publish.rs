//! Publishing signed reports to fullnodes: `POST {url}/v1/reports` with the
//! [`SignedReport`] as JSON, a bounded timeout per attempt and a few retries with
//! backoff. 2xx is delivered; other 4xx (except 408/429) are final; 5xx, 408, 429 and
//! transport errors are retried. The fullnode side (verifying and gossiping reports)
//! comes with the market sidecar.

use std::time::Duration;

use crate::report::SignedReport;

/// How one fullnode took a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The fullnode base URL.
    pub fullnode: String,
    /// Whether it answered 2xx.
    pub delivered: bool,
    /// Attempts made.
    pub attempts: u32,
    /// Last status or error.
    pub detail: String,
}

/// An HTTP publisher.
#[derive(Debug, Clone)]
pub struct Publisher {
    client: reqwest::Client,
    fullnodes: Vec<String>,
    attempts: u32,
    backoff: Duration,
}

impl Publisher {
    /// A publisher to `fullnodes` with a `timeout` per attempt and `attempts` tries.
    pub fn new(fullnodes: Vec<String>, timeout: Duration, attempts: u32) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        Ok(Publisher {
            client,
            fullnodes,
            attempts: attempts.max(1),
            backoff: Duration::from_millis(200),
        })
    }

    /// Send `report` to every fullnode, concurrently; one [`Delivery`] per fullnode,
    /// in configuration order.
    pub async fn publish(&self, report: &SignedReport) -> Vec<Delivery> {
        let tasks: Vec<_> = self
            .fullnodes
            .iter()
            .map(|url| {
                let (this, url, report) = (self.clone(), url.clone(), report.clone());
                tokio::spawn(async move { this.publish_one(&url, &report).await })
            })
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for (task, url) in tasks.into_iter().zip(&self.fullnodes) {
            out.push(task.await.unwrap_or_else(|e| Delivery {
                fullnode: url.clone(),
                delivered: false,
                attempts: 0,
                detail: format!("publisher task failed: {e}"),
            }));
        }
        out
    }

    async fn publish_one(&self, base: &str, report: &SignedReport) -> Delivery {
        let url = format!("{}/v1/reports", base.trim_end_matches('/'));
        let mut detail = String::new();
        for attempt in 1..=self.attempts {
            match self.client.post(&url).json(report).send().await {
                Ok(resp) if resp.status().is_success() => {
                    return Delivery {
                        fullnode: base.to_string(),
                        delivered: true,
                        attempts: attempt,
                        detail: resp.status().to_string(),
                    }
                }
                Ok(resp) => {
                    let status = resp.status();
                    detail = status.to_string();
                    let retry = status.is_server_error()
                        || status == reqwest::StatusCode::REQUEST_TIMEOUT
                        || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
                    if !retry {
                        return Delivery {
                            fullnode: base.to_string(),
                            delivered: false,
                            attempts: attempt,
                            detail,
                        };
                    }
                }
                Err(e) => detail = e.to_string(),
            }
            tracing::debug!(%url, attempt, %detail, "report not delivered");
            if attempt < self.attempts {
                tokio::time::sleep(self.backoff * 2u32.pow(attempt - 1)).await;
            }
        }
        tracing::warn!(%url, %detail, "giving up publishing the report");
        Delivery {
            fullnode: base.to_string(),
            delivered: false,
            attempts: self.attempts,
            detail,
        }
    }
}
