//! What a client may reach through this provider (issue: a provider's host
//! is safe to run as an exit). [`policy`] reads `[egress]` from
//! provider.toml, [`ruleset`] turns the policy into nftables text (both
//! sans-IO, unit-tested), and [`Egress`] is the thin driver that feeds it
//! to `nft` at start and deletes the table on stop. [`tools`] runs `nft`,
//! `tc` and `ip`, here or inside a named network namespace.

pub mod policy;
pub mod ruleset;
pub mod tools;

pub use policy::{EgressFile, EgressPolicy, PolicyError, Uplink};
pub use tools::{NetTools, ToolError};

/// Why the egress filter could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error(
        "egress.uplink: no default route to masquerade through; set egress.uplink in provider.toml"
    )]
    NoUplink,
    #[error("egress filter: {0}")]
    Tool(#[from] ToolError),
}

/// The applied filter of one interface; [`Egress::remove`] deletes it.
#[derive(Debug, Clone)]
pub struct Egress {
    policy: EgressPolicy,
    tools: NetTools,
    /// The uplink in use (configured or found at apply time).
    uplink: String,
}

impl Egress {
    /// Looks up the uplink if needed and loads the ruleset with `nft -f -`,
    /// replacing the table an earlier run may have left.
    pub fn apply(policy: EgressPolicy, tools: NetTools) -> Result<Self, EgressError> {
        let uplink = match &policy.uplink {
            Uplink::Named(name) => name.clone(),
            Uplink::DefaultRoute => {
                let routes = tools.run("ip", &["-o", "route", "show", "default"], None)?;
                policy::default_route_dev(&routes).ok_or(EgressError::NoUplink)?
            }
        };
        tools.run(
            "nft",
            &["-f", "-"],
            Some(&ruleset::ruleset(&policy, &uplink)),
        )?;
        tracing::info!(table = %ruleset::table_name(&policy.iface), %uplink, "{policy}");
        Ok(Self {
            policy,
            tools,
            uplink,
        })
    }

    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    pub fn uplink(&self) -> &str {
        &self.uplink
    }

    /// The ruleset as loaded, for display.
    pub fn ruleset(&self) -> String {
        ruleset::ruleset(&self.policy, &self.uplink)
    }

    /// Deletes the table (nothing else is touched).
    pub fn remove(&self) -> Result<(), EgressError> {
        self.tools.run(
            "nft",
            &["-f", "-"],
            Some(&ruleset::removal(&self.policy.iface)),
        )?;
        tracing::info!(table = %ruleset::table_name(&self.policy.iface), "egress filter removed");
        Ok(())
    }
}
