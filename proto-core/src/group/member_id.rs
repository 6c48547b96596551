//! Member ids: `{prefix}-{uuid}` like Kafka's, with the UUID drawn from a
//! seeded generator so the same events give the same ids.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The source of new member ids for one coordinator.
pub(super) struct MemberIds {
    rng: ChaCha8Rng,
}

impl MemberIds {
    pub(super) fn new(seed: u64) -> MemberIds {
        MemberIds {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// A new id starting with `prefix` (the client id, or the instance id of a
    /// static member, as Kafka does) that `taken` does not already know.
    pub(super) fn next(&mut self, prefix: &str, taken: impl Fn(&str) -> bool) -> String {
        loop {
            // A version-4 UUID, as Java's `UUID.randomUUID()` prints one.
            let hi = (self.rng.next_u64() & !0xF000) | 0x4000;
            let lo = (self.rng.next_u64() & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
            let id = format!(
                "{prefix}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                hi >> 32,
                (hi >> 16) & 0xFFFF,
                hi & 0xFFFF,
                lo >> 48,
                lo & 0xFFFF_FFFF_FFFF
            );
            if !taken(&id) {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuids_after_the_prefix_and_repeat_per_seed() {
        let mut a = MemberIds::new(7);
        let mut b = MemberIds::new(7);
        let first = a.next("client", |_| false);
        assert_eq!(first, b.next("client", |_| false));
        let uuid = first.strip_prefix("client-").expect("prefix");
        let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
        assert_eq!(groups, vec![8, 4, 4, 4, 12]);
        assert_eq!(&uuid[14..15], "4");
        assert_ne!(first, a.next("client", |_| false));
    }

    #[test]
    fn a_taken_id_is_drawn_again() {
        let mut a = MemberIds::new(1);
        let mut b = MemberIds::new(1);
        let taken = b.next("c", |_| false);
        let fresh = a.next("c", |id| id == taken);
        assert_ne!(fresh, taken);
    }
}
