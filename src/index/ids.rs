//! The ids the index generates (`IT-`, `BO-`, `RS-` and a number in hex):
//! their shape, the counters that make them, and a cluster node's range of
//! them.

use super::Index;

pub(super) fn generated_id(prefix: &str, n: u64) -> String {
    format!("{prefix}-{:04X}-{:08X}", n >> 32, n & 0xFFFF_FFFF)
}

/// A generated id written without allocating: [`generated_id`]'s text
/// for a prefix of at most 6 bytes (ours are 2; the rest takes up to 18).
#[derive(Default)]
struct IdBuf {
    bytes: [u8; 24],
}

impl IdBuf {
    fn write(&mut self, prefix: &str, n: u64) -> &str {
        use std::io::Write as _;
        let mut cursor = std::io::Cursor::new(&mut self.bytes[..]);
        let written = write!(cursor, "{prefix}-{:04X}-{:08X}", n >> 32, n & 0xFFFF_FFFF).is_ok();
        let len = if written {
            usize::try_from(cursor.position()).unwrap_or(0)
        } else {
            0
        };
        // Only ASCII was written; an overflow gives the empty id, which
        // no table holds.
        std::str::from_utf8(&self.bytes[..len]).unwrap_or("")
    }
}

/// The number of an id exactly as [`generated_id`] writes it, or `None`
/// for any other id.
pub(super) fn generated_number(prefix: &str, id: &str) -> Option<u64> {
    // `PP-XXXX-XXXXXXXX`, upper-case hex: read byte by byte (asked once
    // for every id a start restores).
    let rest = id.strip_prefix(prefix)?.as_bytes();
    if rest.len() != 14 || rest[0] != b'-' || rest[5] != b'-' {
        return None;
    }
    let mut n = 0u64;
    for &b in rest[1..5].iter().chain(&rest[6..]) {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        n = (n << 4) | u64::from(digit);
    }
    Some(n)
}

/// The first generated id after the counter `n` that `taken` does not
/// hold; the counter itself moves when the id is stored
/// ([`Index::advance_counter`]), so planning one changes nothing.
pub(super) fn free_id(prefix: &str, mut n: u64, taken: impl Fn(&str) -> bool) -> String {
    loop {
        n += 1;
        let id = generated_id(prefix, n);
        if !taken(&id) {
            return id;
        }
    }
}

impl Index {
    /// The counter of `prefix` (`BO`, `RS`, else `IT`): the number of the
    /// last id generated.
    fn counter_of(&self, prefix: &str) -> u64 {
        match prefix {
            "BO" => self.next_person,
            "RS" => self.next_restriction,
            _ => self.next_interaction,
        }
    }

    /// [`Index::counter_of`], to move.
    fn counter(&mut self, prefix: &str) -> &mut u64 {
        match prefix {
            "BO" => &mut self.next_person,
            "RS" => &mut self.next_restriction,
            _ => &mut self.next_interaction,
        }
    }

    /// Makes the ids this index generates (`IT-`, `BO-`, `RS-`) those of
    /// cluster node number `node`: numbers from `node << 32` on (the
    /// first four hex digits), so that two nodes deciding at once never
    /// make the same id. Each counter starts after the largest of its
    /// range already stored: in memory, or `largest_on_disk` (the largest
    /// `IT-` id of the range the store holds). A single node is node 0, as
    /// every index starts.
    pub fn use_id_range(&mut self, node: u16, largest_on_disk: Option<&str>) {
        let low = u64::from(node) << 32;
        let high = low | 0xFFFF_FFFF;
        let top = |prefix: &str, ids: &mut dyn Iterator<Item = &str>| {
            ids.filter_map(|id| generated_number(prefix, id))
                .filter(|n| (low..=high).contains(n))
                .max()
                .unwrap_or(low)
        };
        let in_memory = self.records.kept().filter(|s| !s.has(super::VACATED));
        let generated = in_memory.filter_map(|s| s.id.generated());
        let on_disk = largest_on_disk.and_then(|id| generated_number("IT", id));
        self.next_interaction = generated
            .chain(on_disk)
            .filter(|n| (low..=high).contains(n))
            .max()
            .unwrap_or(low);
        self.next_person = top("BO", &mut self.registry.every_id(&self.people));
        self.next_restriction = top("RS", &mut self.restriction_ids.keys().map(String::as_str));
    }

    /// Whether `id` has the shape of the ids this node generates with
    /// `prefix`, in its own range: another node never makes it, so a
    /// cluster need not fence it ([`Index::use_id_range`]).
    pub fn is_own_generated(&self, prefix: &str, id: &str) -> bool {
        let counter = self.counter_of(prefix);
        generated_number(prefix, id).is_some_and(|n| n >> 32 == counter >> 32)
    }

    /// Moves the counter of `prefix` (`IT`, `BO`, `RS`) past `id` if it is
    /// a generated id after it: a cluster node plans a write without
    /// applying it until the stream gives it back, and the next plan must
    /// not make the same id. An id whose write is then refused is never
    /// made again (a gap, as ids allow).
    pub fn note_planned(&mut self, prefix: &str, id: &str) {
        let Some(n) = generated_number(prefix, id) else {
            return;
        };
        let counter = self.counter(prefix);
        // Only within the node's own range (the counter's first four hex
        // digits): another node's ids move nothing here.
        if n >> 32 == *counter >> 32 && n > *counter {
            *counter = n;
        }
    }

    /// Moves the id counter of `prefix` (`BO`, `IT`, `RS`) past every
    /// generated id from it on that is taken. The counter is the longest
    /// run `1..=n` of generated ids all taken, so the next generated id is
    /// the first free one, whatever order the ids were stored in and
    /// whether a caller chose one that looks generated: an index recovered
    /// from the journal generates exactly the ids the live one would have.
    ///
    /// `id` is the id just stored: the counter moves only when it is the
    /// next generated id, so storing any other id costs a parse, not a
    /// lookup. While a start stages ([`Index::begin_start`]), an `IT` id
    /// is only noted, and the counter moves once at its end.
    pub(super) fn advance_counter(&mut self, prefix: &str, id: &str) {
        if prefix == "IT" && self.note_staged_id(generated_number(prefix, id)) {
            return;
        }
        let counter = self.counter_of(prefix);
        if generated_number(prefix, id) != Some(counter + 1) {
            return;
        }
        self.walk_counter(prefix, counter);
    }

    /// Moves the interaction counter to `run_end` (where a start's run of
    /// stored ids ends, [`super::staged::IdRun`]) and on over every taken
    /// id after it, unless it already stands further.
    pub(super) fn settle_counter(&mut self, run_end: u64) {
        let mut buf = IdBuf::default();
        let mut n = run_end;
        while self.key_of_id(buf.write("IT", n + 1)).is_some() {
            n += 1;
        }
        self.next_interaction = self.next_interaction.max(n);
    }

    /// Moves the counter of `prefix`, now `counter` with `counter + 1`
    /// just stored, over every taken id from there.
    fn walk_counter(&mut self, prefix: &str, counter: u64) {
        // Asked once for every id a start restores: written on the stack,
        // not allocated.
        let taken = |index: &Index, n: u64| {
            let mut buf = IdBuf::default();
            let id = buf.write(prefix, n);
            match prefix {
                "BO" => index.registry.by_id(&index.people, id).is_some(),
                "RS" => index.restriction_ids.contains_key(id),
                _ => index.key_of_id(id).is_some(),
            }
        };
        let mut n = counter + 1;
        while taken(self, n + 1) {
            n += 1;
        }
        *self.counter(prefix) = n;
    }
}

#[cfg(test)]
mod tests {
    use super::{IdBuf, generated_id, generated_number};

    #[test]
    fn a_generated_number_is_read_back_and_nothing_else_is_one() {
        for n in [0, 1, 0xFFFF_FFFF, 1 << 32, (7 << 32) | 42, 0xFFFF_FFFF_FFFF] {
            assert_eq!(generated_number("IT", &generated_id("IT", n)), Some(n));
        }
        for id in [
            "IT-0000-0000000a",
            "IT-0000-0000000G",
            "IT-0000-000000001",
            "IT-000-000000001",
            "IT_0000-00000001",
            "IT-0000_00000001",
            "BO-0000-00000001",
            "IT-0000-0000+001",
            "IT-00001-0000000",
            "",
        ] {
            assert_eq!(generated_number("IT", id), None, "{id}");
        }
    }

    #[test]
    fn an_id_written_on_the_stack_is_the_generated_one() {
        for n in [0, 1, 0xFFFF_FFFF, 1 << 32, (7 << 32) | 42, u64::MAX] {
            for prefix in ["IT", "BO", "RS"] {
                assert_eq!(IdBuf::default().write(prefix, n), generated_id(prefix, n));
            }
        }
    }
}
