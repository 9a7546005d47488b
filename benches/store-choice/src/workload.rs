//! The synthetic interaction log: a pure function of (seed, log position),
//! so every engine applies byte-for-byte the same log and a later run can
//! resume from the applied position a store recorded.
//!
//! Log position p (0-based) is either a create of interaction id p+1 or an
//! update of an earlier, recent interaction (10% of positions from p=1000 on).

pub const SEED: u64 = 0x15_c0_ff_ee;
/// 2024-01-01T00:00:00Z in milliseconds.
pub const T0_MS: i64 = 1_704_067_200_000;
/// One new interaction every 30 s of simulated time: 2M records span ~694 days.
pub const MS_PER_ID: i64 = 30_000;
pub const DAY_MS: i64 = 86_400_000;

#[allow(dead_code)] // names of the channel codes, for readers
pub const CHANNELS: [&str; 8] = ["voice", "text", "email", "chat", "mail", "fax", "gui", "document"];
pub const CH_VOICE: u8 = 0;
pub const CH_FAX: u8 = 5;

#[inline]
pub fn mix(mut z: u64) -> u64 {
    // SplitMix64 finaliser.
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[inline]
fn h(p: u64, salt: u64) -> u64 {
    mix(p ^ SEED.wrapping_mul(salt | 1) ^ salt.rotate_left(29))
}

/// A small, fast PRNG for the harness (not the workload itself).
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(mix(seed) | 1)
    }
    #[inline]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub pos: u64,
    pub is_update: bool,
    pub id: u64,
    pub person: u64,
    pub occurred: i64,
    pub channel: u8,
    pub status: u8,
    pub ext: Option<[u8; 20]>,
    pub body_len: usize,
    body_seed: u64,
}

#[derive(Clone, Copy)]
pub struct Gen {
    pub persons: u64,
}

pub fn is_update(p: u64) -> bool {
    p >= 1000 && h(p, 1) % 100 < 10
}

impl Gen {
    pub fn person_of(&self, id: u64) -> u64 {
        h(id, 2) % self.persons
    }
    pub fn channel_of(id: u64) -> u8 {
        match h(id, 3) % 100 {
            0..=34 => 0,  // voice
            35..=64 => 1, // text
            65..=89 => 2, // email
            90..=93 => 3, // chat
            94..=96 => 4, // mail
            97 => 5,      // fax
            98 => 6,      // gui
            _ => 7,       // document
        }
    }
    pub fn ext_of(id: u64) -> Option<[u8; 20]> {
        if h(id, 4) % 100 < 70 {
            let s = format!("EXT-{:016x}", h(id, 5));
            let mut a = [0u8; 20];
            a.copy_from_slice(s.as_bytes());
            Some(a)
        } else {
            None
        }
    }
    pub fn base_occurred(id: u64) -> i64 {
        let jitter = (h(id, 6) % (12 * 3_600_000)) as i64 - 6 * 3_600_000;
        T0_MS + id as i64 * MS_PER_ID + jitter
    }

    pub fn entry(&self, p: u64) -> Entry {
        let upd = is_update(p);
        let id = if upd {
            let w = p.min(100_000);
            let mut q = p - 1 - h(p, 7) % w;
            while is_update(q) {
                q -= 1;
            }
            q + 1
        } else {
            p + 1
        };
        let occurred = if upd && h(p, 8) % 10 < 3 {
            // rescheduled / corrected start: moves the index keys
            Self::base_occurred(id) + (h(p, 9) % (6 * 3_600_000)) as i64
        } else {
            Self::base_occurred(id)
        };
        Entry {
            pos: p,
            is_update: upd,
            id,
            person: self.person_of(id),
            occurred,
            channel: Self::channel_of(id),
            status: (h(p, 10) % 6) as u8,
            ext: Self::ext_of(id),
            body_len: 600 + (h(p, 11) % 301) as usize,
            body_seed: h(p, 12),
        }
    }

    /// Number of distinct interactions created by log positions [0, end).
    pub fn live_count(end: u64) -> u64 {
        (0..end).filter(|&p| !is_update(p)).count() as u64
    }

    /// A uniformly chosen interaction id created before log position `end`.
    pub fn random_id(rng: &mut Rng, end: u64) -> u64 {
        loop {
            let q = rng.below(end);
            if !is_update(q) {
                return q + 1;
            }
        }
    }
}


impl Entry {
    /// The stored record: header + random bytes (incompressible) up to body_len.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.clear();
        out.push(1u8);
        out.extend_from_slice(&self.person.to_le_bytes());
        out.extend_from_slice(&self.occurred.to_le_bytes());
        out.push(self.channel);
        out.push(self.status);
        match &self.ext {
            Some(e) => {
                out.push(e.len() as u8);
                out.extend_from_slice(e);
            }
            None => out.push(0),
        }
        let mut s = self.body_seed | 1;
        while out.len() + 8 <= self.body_len {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            out.extend_from_slice(&mix(s).to_le_bytes());
        }
        while out.len() < self.body_len {
            out.push(0x5a);
        }
    }
    pub fn ext_str(&self) -> Option<&str> {
        self.ext.as_ref().map(|e| std::str::from_utf8(e).unwrap())
    }
}

/// The index-relevant fields decoded from a stored blob.
pub struct Hdr<'a> {
    pub person: u64,
    pub occurred: i64,
    pub channel: u8,
    pub status: u8,
    pub ext: Option<&'a [u8]>,
}

pub fn decode_hdr(b: &[u8]) -> Hdr<'_> {
    assert_eq!(b[0], 1, "bad record version");
    let person = u64::from_le_bytes(b[1..9].try_into().unwrap());
    let occurred = i64::from_le_bytes(b[9..17].try_into().unwrap());
    let channel = b[17];
    let status = b[18];
    let el = b[19] as usize;
    let ext = if el == 0 { None } else { Some(&b[20..20 + el]) };
    Hdr { person, occurred, channel, status, ext }
}

// ---- order-preserving key encodings shared by the key-value engines ----

#[inline]
pub fn occ_be(o: i64) -> [u8; 8] {
    ((o as u64) ^ (1u64 << 63)).to_be_bytes()
}

/// by_person: person(8) | occurred(8) | id(8) -> ()
pub fn person_key(person: u64, occ: i64, id: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&person.to_be_bytes());
    k[8..16].copy_from_slice(&occ_be(occ));
    k[16..].copy_from_slice(&id.to_be_bytes());
    k
}
/// by_time: occurred(8) | id(8) -> [channel, status]
pub fn time_key(occ: i64, id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&occ_be(occ));
    k[8..].copy_from_slice(&id.to_be_bytes());
    k
}
/// by_channel: channel(1) | occurred(8) | id(8) -> ()
pub fn channel_key(ch: u8, occ: i64, id: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = ch;
    k[1..9].copy_from_slice(&occ_be(occ));
    k[9..].copy_from_slice(&id.to_be_bytes());
    k
}
pub fn id_from_key_tail(k: &[u8]) -> u64 {
    u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap())
}
