//! ApiRoutes grouped by canonical pattern, kept in step with the route watch.
//!
//! Conflicts only happen between routes of one canonical pattern, so a route's admission
//! and the fan-out of a change need only its group. Without this index every reconcile
//! and every watch event parsed every route's pattern: quadratic in the number of routes
//! (10,000 routes created meant some 10⁸ parses).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use apiroutes_crds::{ApiRoute, Pattern};
use apiroutes_kit::reflect::Touched;
use kube::runtime::reflector::{ObjectRef, Store};

/// The canonical pattern of a route's path; `None` when the path is not a valid pattern.
pub fn canonical(route: &ApiRoute) -> Option<String> {
    Pattern::parse(&route.spec.path).ok().map(|p| p.canonical())
}

#[derive(Default)]
pub struct PatternGroups {
    /// Every route seen, with its canonical pattern (`None`: invalid path).
    by_route: HashMap<ObjectRef<ApiRoute>, Option<String>>,
    groups: HashMap<String, HashSet<ObjectRef<ApiRoute>>>,
}

impl PatternGroups {
    /// Follows one watch event (the store has already applied it).
    pub fn update(&mut self, touched: &Touched<ApiRoute>) {
        let key = ObjectRef::from_obj(&*touched.obj);
        let now = (!touched.deleted)
            .then(|| canonical(&touched.obj))
            .flatten();
        let before = self.by_route.get(&key).cloned().flatten();
        if touched.deleted {
            self.by_route.remove(&key);
        } else {
            self.by_route.insert(key.clone(), now.clone());
        }
        if before == now {
            return;
        }
        if let Some(c) = before
            && let Some(group) = self.groups.get_mut(&c)
        {
            group.remove(&key);
            if group.is_empty() {
                self.groups.remove(&c);
            }
        }
        if let Some(c) = now {
            self.groups.entry(c).or_default().insert(key);
        }
    }

    /// Number of routes seen.
    pub fn len(&self) -> usize {
        self.by_route.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_route.is_empty()
    }

    /// The cached routes of the groups of `canonicals`, except `me`.
    pub fn members(
        &self,
        canonicals: &[String],
        me: &ObjectRef<ApiRoute>,
        store: &Store<ApiRoute>,
    ) -> Vec<Arc<ApiRoute>> {
        canonicals
            .iter()
            .filter_map(|c| self.groups.get(c))
            .flatten()
            .filter(|k| *k != me)
            .filter_map(|k| store.get(k))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use apiroutes_crds::testing::route;

    use super::*;

    fn touched(obj: &ApiRoute, deleted: bool) -> Touched<ApiRoute> {
        Touched {
            obj: Arc::new(obj.clone()),
            initial: false,
            deleted,
            previous: None,
        }
    }

    fn group(g: &PatternGroups, c: &str) -> Vec<String> {
        let mut names: Vec<String> = g
            .groups
            .get(c)
            .map(|s| s.iter().map(|k| k.name.clone()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn routes_move_between_groups_with_their_path_and_leave_on_delete() {
        let mut g = PatternGroups::default();
        let a = route("a", "/api/[id]");
        let b = route("b", "/api/[slug]");
        let bad = route("bad", "/api/[...x]/y");
        for r in [&a, &b, &bad] {
            g.update(&touched(r, false));
        }
        let c = canonical(&a).unwrap();
        assert_eq!(canonical(&b).as_ref(), Some(&c));
        assert_eq!(group(&g, &c), ["a", "b"]);
        assert_eq!(g.len(), 3, "an invalid path is counted, in no group");

        // b's path changes: it leaves the group for its new one.
        let b2 = route("b", "/api/x");
        g.update(&touched(&b2, false));
        assert_eq!(group(&g, &c), ["a"]);
        assert_eq!(group(&g, &canonical(&b2).unwrap()), ["b"]);

        // Deleted: gone from its group and the count; an empty group is dropped.
        g.update(&touched(&a, true));
        assert!(!g.groups.contains_key(&c));
        assert_eq!(g.len(), 2);
    }
}
