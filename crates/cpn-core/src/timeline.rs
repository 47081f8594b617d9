//! Capacity over time: how much of each resource is committed in each time slot.
//!
//! Time is cut into fixed slots. A reservation covers every slot it touches (rounded outwards),
//! so the plan is conservative: if no slot is over capacity, no instant is.
//!
//! Each (site, resource) has a segment tree over slots with lazy range-add and range-max. The
//! query the scheduler needs is "the earliest slot `t >= ready` such that every slot in
//! `[t, t + len)` has room", answered by repeatedly asking for the *rightmost* slot in the window
//! that lacks room and jumping just past it. Each jump skips a whole busy block, so the search is
//! `O(jumps × log n)` and a typical decision costs a handful of tree walks.

/// One segment tree: `used` per slot with range add and range max.
///
/// A flat copy of the per-slot values is kept beside the tree: most jobs span a few slots, and for
/// windows up to [`SCAN_LIMIT`] slots a linear scan of the flat array beats a tree walk. Updates
/// pay `O(len)` on the flat copy, once per committed reservation.
#[derive(Debug, Clone)]
pub struct SlotTree {
    size: usize,
    max: Vec<i64>,
    add: Vec<i64>,
    flat: Vec<i64>,
}

/// Windows up to this many slots are answered from the flat array.
pub const SCAN_LIMIT: usize = 32;

impl SlotTree {
    /// A tree of `slots` slots (rounded up to a power of two), all zero.
    pub fn new(slots: usize) -> Self {
        let size = slots.max(1).next_power_of_two();
        Self {
            size,
            max: vec![0; 2 * size],
            add: vec![0; 2 * size],
            flat: vec![0; size],
        }
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.size
    }

    /// Whether the tree has no slots (never true; kept for clippy's `len` convention).
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Adds `delta` to slots `[lo, hi)` (clamped to the tree).
    pub fn add(&mut self, lo: usize, hi: usize, delta: i64) {
        let hi = hi.min(self.size);
        if lo >= hi {
            return;
        }
        self.add_rec(1, 0, self.size, lo, hi, delta);
        for v in &mut self.flat[lo..hi] {
            *v += delta;
        }
    }

    fn add_rec(&mut self, node: usize, nl: usize, nr: usize, lo: usize, hi: usize, delta: i64) {
        if hi <= nl || nr <= lo {
            return;
        }
        if lo <= nl && nr <= hi {
            self.add[node] += delta;
            self.max[node] += delta;
            return;
        }
        let mid = (nl + nr) / 2;
        self.add_rec(2 * node, nl, mid, lo, hi, delta);
        self.add_rec(2 * node + 1, mid, nr, lo, hi, delta);
        self.max[node] = self.max[2 * node].max(self.max[2 * node + 1]) + self.add[node];
    }

    /// Maximum over slots `[lo, hi)`; `i64::MIN` for an empty range.
    pub fn max(&self, lo: usize, hi: usize) -> i64 {
        let hi = hi.min(self.size);
        if lo >= hi {
            return i64::MIN;
        }
        if hi - lo <= SCAN_LIMIT {
            return self.flat[lo..hi].iter().copied().max().unwrap_or(i64::MIN);
        }
        self.max_rec(1, 0, self.size, lo, hi)
    }

    fn max_rec(&self, node: usize, nl: usize, nr: usize, lo: usize, hi: usize) -> i64 {
        if hi <= nl || nr <= lo {
            return i64::MIN;
        }
        if lo <= nl && nr <= hi {
            return self.max[node];
        }
        let mid = (nl + nr) / 2;
        let best = self.max_rec(2 * node, nl, mid, lo, hi).max(self.max_rec(
            2 * node + 1,
            mid,
            nr,
            lo,
            hi,
        ));
        best.saturating_add(self.add[node])
    }

    /// Value of one slot (0 outside the tree).
    pub fn at(&self, slot: usize) -> i64 {
        self.flat.get(slot).copied().unwrap_or(0)
    }

    /// Rightmost slot in `[lo, hi)` whose value exceeds `limit`.
    pub fn last_above(&self, lo: usize, hi: usize, limit: i64) -> Option<usize> {
        let hi = hi.min(self.size);
        if lo >= hi {
            return None;
        }
        if hi - lo <= SCAN_LIMIT {
            return (lo..hi).rev().find(|&i| self.flat[i] > limit);
        }
        self.last_above_rec(1, 0, self.size, lo, hi, limit)
    }

    fn last_above_rec(
        &self,
        node: usize,
        nl: usize,
        nr: usize,
        lo: usize,
        hi: usize,
        limit: i64,
    ) -> Option<usize> {
        // `limit` is expressed relative to this node: ancestors' pending adds are already
        // subtracted by the caller.
        if hi <= nl || nr <= lo || self.max[node] <= limit {
            return None;
        }
        if nr - nl == 1 {
            return Some(nl);
        }
        let mid = (nl + nr) / 2;
        let child_limit = limit - self.add[node];
        self.last_above_rec(2 * node + 1, mid, nr, lo, hi, child_limit)
            .or_else(|| self.last_above_rec(2 * node, nl, mid, lo, hi, child_limit))
    }
}

/// Committed usage of one site: one tree per resource dimension.
#[derive(Debug, Clone)]
pub struct SiteTimeline {
    /// Capacity per dimension.
    pub capacity: Vec<i64>,
    trees: Vec<SlotTree>,
}

/// A request on one dimension: (dimension, amount).
pub type DimRequest = (usize, i64);

impl SiteTimeline {
    /// A timeline with the given per-dimension capacities and slot count.
    pub fn new(capacity: Vec<i64>, slots: usize) -> Self {
        let trees = capacity.iter().map(|_| SlotTree::new(slots)).collect();
        Self { capacity, trees }
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.trees.first().map_or(0, SlotTree::len)
    }

    /// Whether every request fits in every slot of `[lo, hi)`. Returns the rightmost slot that
    /// lacks room otherwise.
    pub fn blocking_slot(&self, lo: usize, hi: usize, reqs: &[DimRequest]) -> Option<usize> {
        let mut worst: Option<usize> = None;
        for &(dim, amount) in reqs {
            if amount <= 0 {
                continue;
            }
            let (Some(tree), Some(cap)) = (self.trees.get(dim), self.capacity.get(dim)) else {
                return Some(hi.saturating_sub(1));
            };
            if let Some(slot) = tree.last_above(lo, hi, cap - amount) {
                worst = Some(worst.map_or(slot, |w: usize| w.max(slot)));
            }
        }
        worst
    }

    /// Earliest slot `t` in `[from, max_start]` such that `[t, t + len)` fits, with
    /// `t + len <= slots`.
    pub fn earliest_fit(
        &self,
        from: usize,
        len: usize,
        max_start: usize,
        reqs: &[DimRequest],
    ) -> Option<usize> {
        let slots = self.slots();
        let mut t = from;
        while t + len <= slots && t <= max_start {
            match self.blocking_slot(t, t + len, reqs) {
                None => return Some(t),
                Some(b) => t = b + 1,
            }
        }
        None
    }

    /// Commits (`sign = 1`) or releases (`sign = -1`) the requests on `[lo, hi)`.
    pub fn apply(&mut self, lo: usize, hi: usize, reqs: &[DimRequest], sign: i64) {
        for &(dim, amount) in reqs {
            if let Some(tree) = self.trees.get_mut(dim) {
                tree.add(lo, hi, sign * amount);
            }
        }
    }

    /// Committed usage of `dim` at `slot`.
    pub fn used(&self, dim: usize, slot: usize) -> i64 {
        self.trees.get(dim).map_or(0, |t| t.at(slot))
    }

    /// Peak committed usage of `dim` over `[lo, hi)`.
    pub fn peak(&self, dim: usize, lo: usize, hi: usize) -> i64 {
        self.trees.get(dim).map_or(0, |t| t.max(lo, hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn tree_matches_brute_force(ops in proptest::collection::vec((0usize..140, 0usize..140, -5i64..6), 1..60),
                                    q in (0usize..128, 0usize..128, -3i64..8)) {
            // 128 slots: windows both below and above SCAN_LIMIT exercise the flat and tree paths.
            let mut tree = SlotTree::new(128);
            let mut naive = vec![0i64; 128];
            for (a, b, d) in ops {
                let (lo, hi) = (a.min(b), a.max(b));
                tree.add(lo, hi, d);
                for v in naive.iter_mut().take(hi.min(128)).skip(lo) { *v += d; }
            }
            let (lo, hi) = (q.0.min(q.1), q.0.max(q.1));
            let expect_max = naive[lo..hi].iter().copied().max().unwrap_or(i64::MIN);
            prop_assert_eq!(tree.max(lo, hi), expect_max);
            let expect_last = (lo..hi).rev().find(|&i| naive[i] > q.2);
            prop_assert_eq!(tree.last_above(lo, hi, q.2), expect_last);
            // The tree path must agree with the flat path on the same window.
            prop_assert_eq!(tree.last_above_rec(1, 0, tree.size, lo, hi, q.2), if lo < hi { expect_last } else { None });
            prop_assert_eq!(tree.at(lo), naive[lo]);
        }
    }

    #[test]
    fn earliest_fit_jumps_over_busy_blocks() {
        let mut tl = SiteTimeline::new(vec![10], 32);
        tl.apply(2, 5, &[(0, 8)], 1);
        tl.apply(7, 9, &[(0, 8)], 1);
        // Needs 3 units for 3 slots: slots 0..2 too short, 5..7 too short, 9.. fits.
        assert_eq!(tl.earliest_fit(0, 3, usize::MAX, &[(0, 3)]), Some(9));
        assert_eq!(tl.earliest_fit(0, 3, 8, &[(0, 3)]), None);
        assert_eq!(tl.earliest_fit(0, 2, usize::MAX, &[(0, 3)]), Some(0));
        assert_eq!(tl.earliest_fit(0, 3, usize::MAX, &[(0, 2)]), Some(0));
        assert_eq!(tl.earliest_fit(0, 3, usize::MAX, &[(0, 11)]), None);
        tl.apply(2, 5, &[(0, 8)], -1);
        assert_eq!(tl.earliest_fit(0, 3, usize::MAX, &[(0, 3)]), Some(0));
        assert_eq!(tl.peak(0, 0, 32), 8);
    }
}
