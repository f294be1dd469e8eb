//! Deterministic pseudo-randomness: a SplitMix64 generator for fault dice, and random-looking but
//! reproducible identifiers (job ids, user ids, access tokens) derived from a counter.

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8] = b"0123456789abcdef";
const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, good enough for test dice, fully reproducible.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        // The top 53 bits fill an f64 mantissa exactly.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `rate` (clamped to 0..=1); never consumes a number when `rate` is 0,
    /// so switching one fault on does not shift the dice of another that is off.
    pub fn chance(&mut self, rate: f64) -> bool {
        rate > 0.0 && self.next_f64() < rate.min(1.0)
    }
}

/// Hands out identifiers that look random but repeat run after run.
#[derive(Debug, Clone)]
pub struct IdMint {
    rng: SplitMix64,
}

impl IdMint {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SplitMix64::new(seed ^ 0xA076_1D64_78BD_642F),
        }
    }

    /// `job_` + 16 alphanumerics (facts §1.3).
    pub fn job_id(&mut self) -> String {
        format!("job_{}", self.string(ALPHANUMERIC, 16))
    }

    /// 24 hex digits, the shape of the ids Auth0 generates for database users.
    pub fn user_id(&mut self) -> String {
        self.string(HEX, 24)
    }

    /// A bearer token shaped like the JWT Auth0 issues (facts §5.1): a fixed RS256 header, the
    /// given claims as the payload, and a random 43-character signature (nothing verifies it;
    /// the emulator remembers the whole token). Clients may read the claims, as they can Auth0's.
    pub fn access_token(&mut self, claims: &serde_json::Value) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            self.string(BASE64URL, 43)
        )
    }

    fn string(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| {
                // The modulo keeps the index inside the alphabet.
                let index = (self.rng.next_u64() % alphabet.len() as u64) as usize;
                char::from(alphabet[index])
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_auth0_shapes_and_repeat_for_a_seed() {
        let mut mint = IdMint::new(3);
        let job = mint.job_id();
        assert_eq!(job.len(), 20);
        assert!(job.starts_with("job_"));
        assert!(job[4..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(IdMint::new(3).job_id(), job);
        assert_ne!(mint.job_id(), job);
        assert_eq!(mint.user_id().len(), 24);
    }

    #[test]
    fn chance_follows_the_rate_roughly() {
        let mut rng = SplitMix64::new(42);
        let hits = (0..10_000).filter(|_| rng.chance(0.25)).count();
        assert!((2_200..2_800).contains(&hits), "{hits}");
        assert!(!(0..100).any(|_| rng.chance(0.0)));
        assert!((0..100).all(|_| rng.chance(1.0)));
    }
}
