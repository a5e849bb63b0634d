//! A stable display name for a visitor who never identified themselves (`Teal Otter`): the
//! same visitor id always gets the same name, so a site owner can tell anonymous visitors
//! apart on the realtime map.

const ADJECTIVES: [&str; 32] = [
    "Amber", "Azure", "Bold", "Brave", "Bright", "Calm", "Clever", "Coral", "Crimson", "Curious",
    "Eager", "Gentle", "Golden", "Happy", "Indigo", "Jade", "Jolly", "Kind", "Lively", "Lucky",
    "Mellow", "Misty", "Noble", "Olive", "Plum", "Quick", "Quiet", "Rosy", "Silver", "Sunny",
    "Teal", "Witty",
];

const ANIMALS: [&str; 32] = [
    "Badger", "Bear", "Beaver", "Bison", "Crane", "Deer", "Dolphin", "Eagle", "Falcon", "Ferret",
    "Fox", "Gecko", "Hare", "Hawk", "Heron", "Koala", "Lemur", "Lynx", "Marten", "Moose", "Otter",
    "Owl", "Panda", "Puffin", "Quail", "Raven", "Seal", "Sparrow", "Tiger", "Turtle", "Walrus",
    "Wolf",
];

/// The generated name of `visitor_id`.
pub fn random_name(visitor_id: &str) -> String {
    // FNV-1a: stable across Rust releases and platforms, unlike std's hasher.
    let mut h = visitor_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    // splitmix64's finaliser spreads FNV's weak low bits over the whole word
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    let adjective = ADJECTIVES[(h % 32) as usize];
    let animal = ANIMALS[((h >> 32) % 32) as usize];
    format!("{adjective} {animal}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_differ_between_visitors() {
        assert_eq!(random_name("v1"), random_name("v1"));
        let names: std::collections::HashSet<_> = (0..200)
            .map(|i| random_name(&format!("visitor-{i}")))
            .collect();
        assert!(names.len() > 150, "{}", names.len());
    }
}
