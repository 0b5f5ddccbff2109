//! The tunnel addresses a provider hands to its clients (sans-IO).
//!
//! A provider owns one IPv4 subnet (e.g. `10.77.0.0/16`). Its own tunnel
//! address is the first host; each client gets one /32 from the rest. The
//! network and broadcast addresses are never handed out. Allocation walks
//! forward from the last address given, so a just-released address is not
//! reused at once (a late packet for the old client cannot reach the new one).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// Why the pool refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("'{text}' is not an IPv4 subnet like 10.77.0.0/16: {reason}")]
    BadSubnet { text: String, reason: String },
    #[error("subnet {subnet} has no free address left")]
    Exhausted { subnet: String },
    #[error("{address} is not a client address of {subnet}")]
    OutOfSubnet { address: Ipv4Addr, subnet: String },
    #[error("{address} is not allocated")]
    NotAllocated { address: Ipv4Addr },
    #[error("{address} is already allocated")]
    AlreadyAllocated { address: Ipv4Addr },
}

/// Allocator of client /32s inside one subnet.
#[derive(Debug, Clone)]
pub struct TunnelAddressPool {
    network: u32,
    prefix: u8,
    /// First and last client address (inclusive), as integers.
    first_client: u32,
    last_client: u32,
    allocated: BTreeSet<u32>,
    cursor: u32,
}

impl TunnelAddressPool {
    /// A pool over `subnet` (`A.B.C.D/N`, N from 8 to 30).
    pub fn new(subnet: &str) -> Result<Self, PoolError> {
        let bad = |reason: &str| PoolError::BadSubnet {
            text: subnet.chars().take(64).collect(),
            reason: reason.to_string(),
        };
        let (addr, prefix) = subnet
            .split_once('/')
            .ok_or_else(|| bad("missing /prefix"))?;
        let addr: Ipv4Addr = addr.trim().parse().map_err(|_| bad("bad address"))?;
        let prefix: u8 = prefix.trim().parse().map_err(|_| bad("bad prefix"))?;
        if !(8..=30).contains(&prefix) {
            return Err(bad("prefix must be 8 to 30"));
        }
        let mask = u32::MAX << (32 - prefix);
        let network = u32::from(addr) & mask;
        if network != u32::from(addr) {
            return Err(bad("host bits are set"));
        }
        let broadcast = network | !mask;
        // network+1 is the provider; clients get network+2 ..= broadcast-1.
        let first_client = network + 2;
        let last_client = broadcast - 1;
        Ok(Self {
            network,
            prefix,
            first_client,
            last_client,
            allocated: BTreeSet::new(),
            cursor: first_client,
        })
    }

    /// The subnet, as `A.B.C.D/N`.
    pub fn subnet(&self) -> String {
        format!("{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }

    /// The subnet's prefix length (8 to 30).
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// The provider's own tunnel address (the first host).
    pub fn provider_address(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }

    /// How many client addresses the subnet holds.
    pub fn capacity(&self) -> usize {
        (self.last_client - self.first_client + 1) as usize
    }

    /// How many are handed out.
    pub fn allocated(&self) -> usize {
        self.allocated.len()
    }

    /// Hands out a free address.
    pub fn allocate(&mut self) -> Result<Ipv4Addr, PoolError> {
        if self.allocated() >= self.capacity() {
            return Err(PoolError::Exhausted {
                subnet: self.subnet(),
            });
        }
        // The set is not full, so this loop finds a free address within
        // `capacity` steps.
        let mut candidate = self.cursor;
        while self.allocated.contains(&candidate) {
            candidate = self.next(candidate);
        }
        self.allocated.insert(candidate);
        self.cursor = self.next(candidate);
        Ok(Ipv4Addr::from(candidate))
    }

    /// Marks a known address as taken (e.g. when restoring live orders).
    pub fn reserve(&mut self, address: Ipv4Addr) -> Result<(), PoolError> {
        let value = self.client_value(address)?;
        if !self.allocated.insert(value) {
            return Err(PoolError::AlreadyAllocated { address });
        }
        Ok(())
    }

    /// Returns an address to the pool.
    pub fn release(&mut self, address: Ipv4Addr) -> Result<(), PoolError> {
        let value = self.client_value(address)?;
        if !self.allocated.remove(&value) {
            return Err(PoolError::NotAllocated { address });
        }
        Ok(())
    }

    fn client_value(&self, address: Ipv4Addr) -> Result<u32, PoolError> {
        let value = u32::from(address);
        if !(self.first_client..=self.last_client).contains(&value) {
            return Err(PoolError::OutOfSubnet {
                address,
                subnet: self.subnet(),
            });
        }
        Ok(value)
    }

    fn next(&self, value: u32) -> u32 {
        if value >= self.last_client {
            self.first_client
        } else {
            value + 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_hosts_skipping_network_provider_broadcast() {
        let mut pool = TunnelAddressPool::new("10.77.0.0/29").unwrap();
        assert_eq!(pool.provider_address(), Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(pool.capacity(), 5);
        let got: Vec<Ipv4Addr> = (0..5).map(|_| pool.allocate().unwrap()).collect();
        let expected: Vec<Ipv4Addr> = (2..=6).map(|h| Ipv4Addr::new(10, 77, 0, h)).collect();
        assert_eq!(got, expected);
        assert!(matches!(pool.allocate(), Err(PoolError::Exhausted { .. })));
    }

    #[test]
    fn released_addresses_are_reused_only_after_wrapping() {
        let mut pool = TunnelAddressPool::new("10.0.0.0/29").unwrap();
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        pool.release(a).unwrap();
        let c = pool.allocate().unwrap();
        assert_ne!(c, a, "not reused immediately");
        assert!(c > b);
        for _ in 0..3 {
            pool.allocate().unwrap();
        }
        assert_eq!(pool.allocated(), 5);
        assert!(pool.allocate().is_err());
        pool.release(b).unwrap();
        assert_eq!(pool.allocate().unwrap(), b);
    }

    #[test]
    fn release_and_reserve_check_membership() {
        let mut pool = TunnelAddressPool::new("10.0.0.0/24").unwrap();
        for address in [
            Ipv4Addr::new(10, 0, 0, 0),
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 255),
            Ipv4Addr::new(10, 0, 1, 5),
        ] {
            assert!(matches!(
                pool.release(address),
                Err(PoolError::OutOfSubnet { .. })
            ));
            assert!(matches!(
                pool.reserve(address),
                Err(PoolError::OutOfSubnet { .. })
            ));
        }
        let free = Ipv4Addr::new(10, 0, 0, 9);
        assert_eq!(
            pool.release(free),
            Err(PoolError::NotAllocated { address: free })
        );
        pool.reserve(free).unwrap();
        assert_eq!(
            pool.reserve(free),
            Err(PoolError::AlreadyAllocated { address: free })
        );
        // allocation skips reserved addresses
        for _ in 0..252 {
            assert_ne!(pool.allocate().unwrap(), free);
        }
        assert!(pool.allocate().is_err());
    }

    #[test]
    fn rejects_bad_subnets() {
        for bad in [
            "10.0.0.0",
            "10.0.0.0/31",
            "10.0.0.0/7",
            "10.0.0.1/24",
            "x/24",
            "10.0.0.0/y",
            "::/64",
        ] {
            assert!(
                matches!(
                    TunnelAddressPool::new(bad),
                    Err(PoolError::BadSubnet { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(
            TunnelAddressPool::new("10.64.0.0/10").unwrap().subnet(),
            "10.64.0.0/10"
        );
    }
}
