//! numpy's legacy `RandomState` (MT19937 seeded with `init_genrand`), as far as the
//! function-vector recipe draws from it: `permutation`, `choice(replace=False)` and
//! bounded integers. Splits then match the reference's (sklearn `train_test_split`, which
//! calls `RandomState(seed).permutation`) index for index.

const N: usize = 624;
const M: usize = 397;

/// numpy's `np.random.RandomState(seed)` for an integer seed (Mersenne Twister MT19937).
#[derive(Clone, Debug)]
pub struct RandomState {
    mt: Box<[u32; N]>,
    pos: usize,
}

impl RandomState {
    /// `RandomState(seed)`: MT19937 `init_genrand(seed)` (numpy's `mt19937_seed`).
    pub fn new(seed: u32) -> Self {
        let mut mt = Box::new([0u32; N]);
        mt[0] = seed;
        for i in 1..N {
            let prev = mt[i - 1];
            mt[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Self { mt, pos: N }
    }

    fn generate(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        for k in 0..N {
            let y = (self.mt[k] & UPPER) | (self.mt[(k + 1) % N] & LOWER);
            let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
            self.mt[k] = self.mt[(k + M) % N] ^ (y >> 1) ^ mag;
        }
        self.pos = 0;
    }

    /// The next 32 random bits (tempered MT19937 output).
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= N {
            self.generate();
        }
        let mut y = self.mt[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A uniform integer in `0..=max` by masked rejection (numpy's `random_interval`).
    pub fn interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for shift in [1, 2, 4, 8, 16] {
            mask |= mask >> shift;
        }
        loop {
            let value = self.next_u32() & mask;
            if value <= max {
                return value;
            }
        }
    }

    /// Shuffles `items` in place as numpy's legacy `shuffle` does (Fisher–Yates from the
    /// end, `j = random_interval(i)`).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.interval(i as u32) as usize;
            items.swap(i, j);
        }
    }

    /// `permutation(n)`: `0..n` shuffled.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        self.shuffle(&mut p);
        p
    }

    /// `choice(n, k, replace=False)`: the first `k` entries of `permutation(n)`.
    pub fn choice(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut p = self.permutation(n);
        p.truncate(k);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy_reference_vectors() {
        // MT19937 reference output for init_genrand(5489).
        let mut r = RandomState::new(5489);
        assert_eq!(r.next_u32(), 3_499_211_612);
        // `np.random.RandomState(42).permutation(2398)[:3]` (function-vectors reference §1).
        let p = RandomState::new(42).permutation(2398);
        assert_eq!(&p[..3], &[443, 196, 1508]);
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = RandomState::new(7).permutation(100);
        p.sort_unstable();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
        assert_eq!(RandomState::new(7).choice(100, 5).len(), 5);
    }
}
