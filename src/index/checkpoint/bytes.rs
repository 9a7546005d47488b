//! The bytes of an index checkpoint: LEB128 varints (signed ones
//! zigzagged), texts as a length and their bytes, and a CRC-32 of them
//! all at the end. [`Out`] writes through a buffer and keeps its first
//! error; [`In`] reads through its own buffer, never past the length it
//! was given, each count bounded by the bytes left.

use std::io::{Read, Write};

use super::{CheckpointError, MAX_ITEM, slot_key};
use crate::index::{InteractionKey, NameKey, PersonKey};

/// What [`Index::write_checkpoint`] writes through: a buffer spilled to
/// `out` now and then, the CRC-32 of every byte, and the first error
/// (kept, so that each number written need not be checked).
pub(super) struct Out<W: Write> {
    out: W,
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
    written: u64,
    failed: Option<std::io::Error>,
}

impl<W: Write> Out<W> {
    pub(super) fn new(out: W) -> Out<W> {
        Out {
            out,
            buf: Vec::with_capacity(1 << 17),
            crc: crc32fast::Hasher::new(),
            written: 0,
            failed: None,
        }
    }

    pub(super) fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    pub(super) fn u(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    pub(super) fn i(&mut self, v: i64) {
        self.u(((v << 1) ^ (v >> 63)) as u64);
    }

    pub(super) fn bytes(&mut self, b: &[u8]) {
        self.u(b.len() as u64);
        self.raw(b);
    }

    pub(super) fn text(&mut self, t: &str) {
        self.bytes(t.as_bytes());
    }

    /// A table's keys: how many, then each.
    pub(super) fn keys(&mut self, keys: impl Iterator<Item = u64>, n: usize) {
        self.u(n as u64);
        for k in keys {
            self.u(k);
            self.spill();
        }
    }

    /// Writes the buffer out once it has grown.
    pub(super) fn spill(&mut self) {
        if self.buf.len() >= 1 << 16 {
            self.flush();
        }
    }

    pub(super) fn flush(&mut self) {
        if self.failed.is_none() {
            self.crc.update(&self.buf);
            self.written += self.buf.len() as u64;
            if let Err(e) = self.out.write_all(&self.buf) {
                self.failed = Some(e);
            }
        }
        self.buf.clear();
    }

    pub(super) fn finish(mut self) -> Result<u64, CheckpointError> {
        self.flush();
        let crc = self.crc.clone().finalize();
        let io = |cause| CheckpointError::Io {
            action: "writing",
            cause,
        };
        if let Some(e) = self.failed.take() {
            return Err(io(e));
        }
        self.out.write_all(&crc.to_le_bytes()).map_err(io)?;
        self.out.flush().map_err(io)?;
        Ok(self.written + 4)
    }
}

/// What [`Index::read_checkpoint`] reads through: its own buffer (a
/// number decoded from it in place), refilled from `input`, with the
/// CRC-32 of every byte passed, and never past the `len` bytes given.
pub(super) struct In<R: Read> {
    input: R,
    buf: Vec<u8>,
    pos: usize,
    /// Bytes of the index part before `buf[0]`.
    before: u64,
    /// Bytes of the index part, its CRC-32 excluded.
    len: u64,
    crc: crc32fast::Hasher,
}

impl<R: Read> In<R> {
    pub(super) fn new(input: R, len: u64) -> Result<In<R>, CheckpointError> {
        let len = len.checked_sub(4).ok_or(CheckpointError::Damaged {
            at: 0,
            what: "shorter than its checksum".into(),
        })?;
        Ok(In {
            input,
            buf: Vec::new(),
            pos: 0,
            before: 0,
            len,
            crc: crc32fast::Hasher::new(),
        })
    }

    pub(super) fn at(&self) -> u64 {
        self.before + self.pos as u64
    }

    pub(super) fn damaged(&self, what: &str) -> CheckpointError {
        CheckpointError::Damaged {
            at: self.at(),
            what: what.chars().take(200).collect(),
        }
    }

    /// Makes `n` bytes readable at `pos`, or says the index part ends
    /// first.
    pub(super) fn need(&mut self, n: u64) -> Result<(), CheckpointError> {
        if (self.buf.len() - self.pos) as u64 >= n {
            return Ok(());
        }
        if self.len - self.at() < n {
            return Err(self.damaged("it ends early"));
        }
        self.crc.update(&self.buf[..self.pos]);
        self.before += self.pos as u64;
        self.buf.drain(..self.pos);
        self.pos = 0;
        let want = (n as usize).max(1 << 20);
        let until = (self.len - self.before).min(want as u64) as usize;
        let have = self.buf.len();
        self.buf.resize(until, 0);
        self.input
            .read_exact(&mut self.buf[have..])
            .map_err(|cause| CheckpointError::Io {
                action: "reading",
                cause,
            })
    }

    pub(super) fn take(&mut self, n: u64) -> Result<&[u8], CheckpointError> {
        self.need(n)?;
        let from = self.pos;
        self.pos += n as usize;
        Ok(&self.buf[from..self.pos])
    }

    pub(super) fn u(&mut self) -> Result<u64, CheckpointError> {
        if self.buf.len() - self.pos < 10 {
            self.need((self.len - self.at()).min(10))?;
        }
        let mut v = 0u64;
        for (i, &b) in self.buf[self.pos..].iter().enumerate().take(10) {
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.pos += i + 1;
                return Ok(v);
            }
        }
        Err(self.damaged("a number past 64 bits, or cut short"))
    }

    pub(super) fn i(&mut self) -> Result<i64, CheckpointError> {
        let z = self.u()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    pub(super) fn u32(&mut self) -> Result<u32, CheckpointError> {
        let v = self.u()?;
        u32::try_from(v).map_err(|_| self.damaged("a number past 32 bits"))
    }

    pub(super) fn usize(&mut self) -> Result<usize, CheckpointError> {
        let v = self.u()?;
        self.usize_of(v)
    }

    pub(super) fn usize_of(&self, v: u64) -> Result<usize, CheckpointError> {
        usize::try_from(v).map_err(|_| self.damaged("a count past this machine's"))
    }

    pub(super) fn u64_le(&mut self) -> Result<u64, CheckpointError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// How many items follow, each at least `each` bytes: never more
    /// than the bytes left could hold, so no count allocates past the
    /// file.
    pub(super) fn count(&mut self, each: u64) -> Result<usize, CheckpointError> {
        let n = self.u()?;
        if n.saturating_mul(each) > self.len - self.at() {
            return Err(self.damaged("a count past the bytes left"));
        }
        self.usize_of(n)
    }

    pub(super) fn bytes(&mut self) -> Result<&[u8], CheckpointError> {
        let n = self.u()?;
        if n > MAX_ITEM {
            return Err(self.damaged("an item longer than any kept"));
        }
        self.take(n)
    }

    pub(super) fn text(&mut self) -> Result<String, CheckpointError> {
        let n = self.u()?;
        // The loan names' text is one item of them all.
        if n > self.len - self.at() {
            return Err(self.damaged("a text past the bytes left"));
        }
        let b = self.take(n)?;
        match std::str::from_utf8(b) {
            Ok(t) => Ok(t.to_owned()),
            Err(_) => Err(self.damaged("a text that is not UTF-8")),
        }
    }

    pub(super) fn key(&mut self, slots: usize) -> Result<InteractionKey, CheckpointError> {
        let raw = self.u()?;
        slot_key(raw, slots).ok_or_else(|| self.damaged("an interaction's key past the slots"))
    }

    pub(super) fn person(&mut self, people: usize) -> Result<PersonKey, CheckpointError> {
        let k = self.u32()?;
        if k as usize >= people {
            return Err(self.damaged("a person's key past the people"));
        }
        Ok(PersonKey(k))
    }

    pub(super) fn name_key(&mut self, names: usize) -> Result<NameKey, CheckpointError> {
        let k = self.u32()?;
        if k as usize >= names {
            return Err(self.damaged("a loan's key past the names"));
        }
        Ok(NameKey(k))
    }

    pub(super) fn vocab<T: Copy>(&mut self, all: &[T]) -> Result<T, CheckpointError> {
        let i = self.u()?;
        usize::try_from(i)
            .ok()
            .and_then(|i| all.get(i).copied())
            .ok_or_else(|| self.damaged("a value past its vocabulary"))
    }

    pub(super) fn maybe<T: Copy>(&mut self, all: &[T]) -> Result<Option<T>, CheckpointError> {
        match self.u()? {
            0 => Ok(None),
            i => usize::try_from(i - 1)
                .ok()
                .and_then(|i| all.get(i).copied())
                .map(Some)
                .ok_or_else(|| self.damaged("a value past its vocabulary")),
        }
    }

    /// A table's keys, as [`Out::keys`] wrote them, each checked by
    /// `check`.
    pub(super) fn key_list<K>(
        &mut self,
        check: impl Fn(u64) -> Option<K>,
    ) -> Result<Vec<K>, CheckpointError> {
        let n = self.count(1)?;
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            let raw = self.u()?;
            keys.push(check(raw).ok_or_else(|| self.damaged("a table's key"))?);
        }
        Ok(keys)
    }

    /// A table filed again holds every key written: none was left out
    /// for a name its slot or person no longer has.
    pub(super) fn same_count(
        &self,
        got: usize,
        written: usize,
        what: &str,
    ) -> Result<(), CheckpointError> {
        if got == written {
            Ok(())
        } else {
            Err(self.damaged(&format!(
                "{written} keys of the {what} table were written and {got} are filed again"
            )))
        }
    }

    /// The end: every byte read, and the CRC-32 after them matches.
    pub(super) fn finish(mut self) -> Result<(), CheckpointError> {
        if self.at() != self.len {
            return Err(self.damaged("bytes after the end of the index"));
        }
        self.crc.update(&self.buf[..self.pos]);
        let mut stored = [0u8; 4];
        self.input
            .read_exact(&mut stored)
            .map_err(|cause| CheckpointError::Io {
                action: "reading",
                cause,
            })?;
        if self.crc.finalize() != u32::from_le_bytes(stored) {
            return Err(CheckpointError::Damaged {
                at: self.len,
                what: "its checksum does not match its bytes".into(),
            });
        }
        Ok(())
    }
}
