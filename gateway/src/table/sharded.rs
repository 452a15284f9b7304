//! A hash map split into shards behind `Arc`s, for the parts of a route-table snapshot
//! that are keyed maps (targets, entries, host tries). Cloning is O(1); a change copies the
//! shard list (256 pointers) and the one shard it touches, so a watch event costs about
//! `len / 256` entries of copying however large the table is, while snapshots already
//! handed to requests stay untouched.

use std::{borrow::Borrow, collections::HashMap, hash::Hash, sync::Arc};

use foldhash::fast::{FixedState, RandomState};
use std::hash::BuildHasher;

const SHARDS: usize = 256;
/// Picks the shard; any fixed seed does (the maps inside use random ones).
const SHARD_SEED: u64 = 0x6170_6972_6f75_7465;

type Shard<K, V> = HashMap<K, V, RandomState>;

pub struct ShardedMap<K, V> {
    shards: Arc<Vec<Arc<Shard<K, V>>>>,
    len: usize,
}

impl<K, V> Clone for ShardedMap<K, V> {
    fn clone(&self) -> Self {
        ShardedMap {
            shards: Arc::clone(&self.shards),
            len: self.len,
        }
    }
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        // One shared empty shard: the first write to a shard gives it its own map.
        let empty = Arc::new(Shard::default());
        ShardedMap {
            shards: Arc::new(vec![empty; SHARDS]),
            len: 0,
        }
    }
}

fn shard_of<Q: Hash + ?Sized>(key: &Q) -> usize {
    // The remainder is < SHARDS, so the cast cannot truncate.
    (FixedState::with_seed(SHARD_SEED).hash_one(key) % SHARDS as u64) as usize
}

impl<K: Hash + Eq + Clone, V: Clone> ShardedMap<K, V> {
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[shard_of(key)].get(key)
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    fn shard_mut(&mut self, i: usize) -> &mut Shard<K, V> {
        Arc::make_mut(&mut Arc::make_mut(&mut self.shards)[i])
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = self.shard_mut(shard_of(&key)).insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = shard_of(key);
        // Copy nothing when there is nothing to remove.
        if !self.shards[i].contains_key(key) {
            return None;
        }
        let old = self.shard_mut(i).remove(key);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// The value at `key`, for changing in place (its shard is copied first if shared).
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = shard_of(key);
        if !self.shards[i].contains_key(key) {
            return None;
        }
        self.shard_mut(i).get_mut(key)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_change_leaves_clones_untouched() {
        let mut a: ShardedMap<Arc<str>, u32> = ShardedMap::default();
        for i in 0..1000 {
            a.insert(format!("k{i}").into(), i);
        }
        let b = a.clone();
        a.insert("k1".into(), 99);
        assert_eq!(a.remove("k2"), Some(2));
        assert_eq!(a.remove("nope"), None);
        *a.get_mut("k3").unwrap() = 33;
        assert_eq!((a.len(), b.len()), (999, 1000));
        assert_eq!((a.get("k1"), b.get("k1")), (Some(&99), Some(&1)));
        assert_eq!((a.get("k3"), b.get("k3")), (Some(&33), Some(&3)));
        assert!(!a.contains_key("k2") && b.contains_key("k2"));
        assert_eq!(a.values().count(), 999);
    }
}
