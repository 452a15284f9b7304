//! Pod addresses from the node's pod CIDR (the first host address is the node's own).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

#[derive(Debug, Clone)]
pub struct IpPool {
    network: u32,
    size: u32,
    used: BTreeSet<u32>,
    next: u32,
}

impl IpPool {
    /// `10.244.0.0/24` → pods get .2 to .254 (.1 is the node).
    pub fn new(cidr: &str) -> Result<Self, String> {
        let (addr, len) = cidr
            .split_once('/')
            .ok_or_else(|| format!("invalid CIDR {cidr:?}"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| format!("invalid CIDR {cidr:?}"))?;
        let len: u32 = len
            .parse()
            .ok()
            .filter(|l| (8..=30).contains(l))
            .ok_or_else(|| format!("invalid prefix in {cidr:?}"))?;
        let size = 1u32 << (32 - len);
        let network = u32::from(addr) & !(size - 1);
        Ok(Self {
            network,
            size,
            used: BTreeSet::new(),
            next: 2,
        })
    }

    pub fn node_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }

    fn offset(&self, ip: Ipv4Addr) -> Option<u32> {
        let o = u32::from(ip).checked_sub(self.network)?;
        (2..self.size - 1).contains(&o).then_some(o)
    }

    /// Takes `preferred` if it is in range and free (a pod keeps its address across agent
    /// restarts), else the next free one in rotation (a just-released address is not reused
    /// at once, so stale endpoints do not point at a new pod).
    pub fn allocate(&mut self, preferred: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        if let Some(o) = preferred.and_then(|ip| self.offset(ip))
            && self.used.insert(o)
        {
            return Some(Ipv4Addr::from(self.network + o));
        }
        let hosts = self.size - 3;
        for i in 0..hosts {
            let o = 2 + (self.next - 2 + i) % hosts;
            if self.used.insert(o) {
                self.next = 2 + (o - 2 + 1) % hosts;
                return Some(Ipv4Addr::from(self.network + o));
            }
        }
        None
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        if let Some(o) = self.offset(ip) {
            self.used.remove(&o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_in_rotation_and_honours_preferred() {
        let mut p = IpPool::new("10.244.0.0/24").expect("pool");
        assert_eq!(p.node_ip(), Ipv4Addr::new(10, 244, 0, 1));
        let a = p.allocate(None).expect("a");
        assert_eq!(a, Ipv4Addr::new(10, 244, 0, 2));
        p.release(a);
        assert_eq!(p.allocate(None), Some(Ipv4Addr::new(10, 244, 0, 3)));
        assert_eq!(
            p.allocate(Some(Ipv4Addr::new(10, 244, 0, 9))),
            Some(Ipv4Addr::new(10, 244, 0, 9))
        );
        // Taken, or out of range: fall back to rotation.
        assert_eq!(
            p.allocate(Some(Ipv4Addr::new(10, 244, 0, 9))),
            Some(Ipv4Addr::new(10, 244, 0, 4))
        );
        assert_eq!(
            p.allocate(Some(Ipv4Addr::new(10, 9, 0, 9))),
            Some(Ipv4Addr::new(10, 244, 0, 5))
        );
        assert_eq!(
            p.allocate(Some(Ipv4Addr::new(10, 244, 0, 1))),
            Some(Ipv4Addr::new(10, 244, 0, 6))
        );
    }

    #[test]
    fn exhausts_then_reuses_released() {
        let mut p = IpPool::new("10.0.0.0/29").expect("pool");
        let got: Vec<_> = std::iter::from_fn(|| p.allocate(None)).collect();
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got.last(), Some(&Ipv4Addr::new(10, 0, 0, 6)));
        p.release(Ipv4Addr::new(10, 0, 0, 4));
        assert_eq!(p.allocate(None), Some(Ipv4Addr::new(10, 0, 0, 4)));
        assert!(IpPool::new("10.0.0.0").is_err());
        assert!(IpPool::new("10.0.0.0/31").is_err());
    }
}
