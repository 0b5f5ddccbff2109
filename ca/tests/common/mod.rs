//! Shared test harness: a real DeCA service on 127.0.0.1:0.
#![allow(dead_code)]

use std::sync::Arc;

use alloy::primitives::{Address, B256};
use flowshield_ca::authority::Authority;
use flowshield_ca::client::CaClient;
use flowshield_ca::node::NodeKeys;
use flowshield_ca::registry::Registry;
use flowshield_ca::service::{api, CaService, IssueResponse, ServiceConfig};
use flowshield_ca::store::Store;
use flowshield_ca::unix_now;
use flowshield_ca::verify::OperatorFacts;

pub const ADMIN_TOKEN: &str = "test-admin-token";

pub struct TestCa {
    pub svc: Arc<CaService>,
    pub client: CaClient,
    pub admin: CaClient,
    pub base: String,
    server: tokio::task::JoinHandle<()>,
}

impl TestCa {
    /// A fresh node and the certificate this CA issued it over the HTTP API.
    pub async fn issue_new_node(&self) -> (NodeKeys, IssueResponse) {
        let keys = NodeKeys::generate();
        let issued = self.client.request_certificate(&keys).await.unwrap();
        (keys, issued)
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Starts a service for `operator`; the listener is bound before this returns, so requests
/// can be sent at once (the kernel queues connections until axum accepts them).
pub async fn start_ca(operator: Address, registry: Option<Arc<dyn Registry>>) -> TestCa {
    let authority = Authority::create(operator, unix_now()).unwrap();
    start_ca_with(authority, registry).await
}

pub async fn start_ca_with(authority: Authority, registry: Option<Arc<dyn Registry>>) -> TestCa {
    let store = Store::open(":memory:").await.unwrap();
    let config = ServiceConfig {
        admin_token: Some(ADMIN_TOKEN.into()),
        ..ServiceConfig::default()
    };
    let svc = CaService::new(authority, store, registry, config)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = api::router(Arc::clone(&svc));
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    TestCa {
        svc,
        client: CaClient::new(&base),
        admin: CaClient::new(&base).with_admin_token(ADMIN_TOKEN),
        base,
        server,
    }
}

/// Operator facts as the chain would report them for a registered, unrevoked operator.
pub fn registered(authority: &Authority) -> OperatorFacts {
    OperatorFacts {
        registered: true,
        ca_cert_hash: B256::from(authority.ca_cert_hash()),
        revoked: false,
        anchored_root: B256::ZERO,
    }
}
