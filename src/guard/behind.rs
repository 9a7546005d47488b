//! A file written on a thread of its own, a mebibyte at a time, while the
//! caller goes on filling the next: the index checkpoint's writer
//! ([`super::checkpoint`]).
//!
//! Why: a checkpoint is hundreds of megabytes (687 MB at ten million
//! interactions), and a start that rebuilt memory writes one before it
//! serves. Encoding it and the kernel's copy of it into the page cache
//! took about the same time each, one after the other on one thread,
//! while the other core had nothing to do. Here they run side by side.
//!
//! At most [`IN_FLIGHT`] chunks wait for the writer, and emptied chunks
//! come back to be filled again: the memory it holds is bounded (a few
//! mebibytes) and is not asked of the system anew for every chunk.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, channel, sync_channel};
use std::thread::JoinHandle;

/// The bytes handed to the writer at a time.
const CHUNK: usize = 1 << 20;

/// Chunks that may wait for the writer while the next is filled.
const IN_FLIGHT: usize = 2;

/// A [`Write`] whose bytes a thread of its own writes to a file, a
/// [`CHUNK`] at a time. [`WriteBehind::finish`] hands the file back once
/// every byte is written (not flushed: the caller flushes it). A write
/// error of the thread's is returned by the next write (or by
/// `finish`), and nothing more is written after it.
pub(super) struct WriteBehind<'a> {
    buf: Vec<u8>,
    to: Option<SyncSender<Vec<u8>>>,
    back: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<File>>>,
    keep_going: &'a dyn Fn() -> bool,
}

impl<'a> WriteBehind<'a> {
    /// Starts the thread that writes `file`. `keep_going` is asked before
    /// every chunk is handed over: once it says no, writes fail (a
    /// checkpoint built while serving, abandoned).
    pub(super) fn new(file: File, keep_going: &'a dyn Fn() -> bool) -> io::Result<WriteBehind<'a>> {
        let (to, from) = sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (give_back, back) = channel::<Vec<u8>>();
        let thread = std::thread::Builder::new()
            .name("checkpoint-writer".into())
            .spawn(move || {
                let mut file = file;
                for mut chunk in from {
                    file.write_all(&chunk)?;
                    chunk.clear();
                    // The filler may have finished: the chunk is then freed.
                    let _ = give_back.send(chunk);
                }
                Ok(file)
            })?;
        Ok(WriteBehind {
            buf: Vec::with_capacity(CHUNK),
            to: Some(to),
            back,
            thread: Some(thread),
            keep_going,
        })
    }

    /// Hands the chunk filled so far to the thread.
    fn hand_over(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if !(self.keep_going)() {
            return Err(io::Error::other("abandoned"));
        }
        let next = match self.back.try_recv() {
            Ok(emptied) => emptied,
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => Vec::with_capacity(CHUNK),
        };
        let full = std::mem::replace(&mut self.buf, next);
        let sent = match &self.to {
            Some(to) => to.send(full).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            // The thread stopped: its error says why.
            Err(self
                .join()
                .err()
                .unwrap_or_else(|| io::Error::other("the checkpoint's writer stopped")))
        }
    }

    /// Ends the thread: the file once every chunk handed over is written,
    /// or the thread's error.
    fn join(&mut self) -> io::Result<File> {
        self.to = None;
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the checkpoint's writer panicked"))),
            None => Err(io::Error::other("the checkpoint's writer already stopped")),
        }
    }

    /// Hands over what is left and waits for the thread to write it all:
    /// the file, every byte written to it (the caller flushes it to the
    /// disk).
    pub(super) fn finish(mut self) -> io::Result<File> {
        self.hand_over()?;
        self.join()
    }
}

impl Write for WriteBehind<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = (CHUNK - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.hand_over()?;
        }
        Ok(n)
    }

    /// Hands the chunk filled so far to the thread; it does not wait for
    /// it to be written ([`WriteBehind::finish`] does).
    fn flush(&mut self) -> io::Result<()> {
        self.hand_over()
    }
}

impl Drop for WriteBehind<'_> {
    /// A writer dropped without [`WriteBehind::finish`] (a failed or
    /// abandoned checkpoint) ends its thread before the caller removes
    /// the file.
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("cg-behind-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        dir
    }

    /// Every byte arrives, in order, across chunks, with writes of every
    /// size (one byte, a chunk and a half, the rest), the last chunk
    /// partial.
    #[test]
    fn every_byte_is_written_in_order() {
        let path = temp("order");
        let bytes: Vec<u8> = (0..(5 * CHUNK + 12_345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let yes = || true;
        let mut w = WriteBehind::new(File::create(&path).unwrap(), &yes).unwrap();
        w.write_all(&bytes[..1]).unwrap();
        w.write_all(&bytes[1..CHUNK * 3 / 2]).unwrap();
        w.flush().unwrap();
        for piece in bytes[CHUNK * 3 / 2..].chunks(4093) {
            w.write_all(piece).unwrap();
        }
        let file = w.finish().unwrap();
        drop(file);
        let mut back = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut back).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back.len(), bytes.len());
        assert!(back == bytes, "the bytes written differ from those given");
    }

    /// A file the thread cannot write (opened for reading only): the
    /// error reaches the caller, from a write or at the end, never a
    /// file said to be whole.
    #[test]
    fn the_threads_write_error_reaches_the_caller() {
        let path = temp("error");
        std::fs::write(&path, b"").unwrap();
        let read_only = File::open(&path).unwrap();
        let yes = || true;
        let mut w = WriteBehind::new(read_only, &yes).unwrap();
        let chunk = vec![1u8; CHUNK];
        let mut failed = false;
        for _ in 0..(IN_FLIGHT + 4) {
            if w.write_all(&chunk).is_err() {
                failed = true;
                break;
            }
        }
        if !failed {
            failed = w.finish().is_err();
        }
        std::fs::remove_file(&path).unwrap();
        assert!(failed, "a write that failed was reported as written");
    }

    /// Once `keep_going` says no, the next chunk is refused as
    /// abandoned; what was not handed over is never written.
    #[test]
    fn an_abandoned_write_stops_at_the_next_chunk() {
        let path = temp("abandon");
        let go = std::sync::atomic::AtomicBool::new(true);
        let keep_going = || go.load(std::sync::atomic::Ordering::SeqCst);
        let mut w = WriteBehind::new(File::create(&path).unwrap(), &keep_going).unwrap();
        w.write_all(&vec![2u8; CHUNK]).unwrap();
        go.store(false, std::sync::atomic::Ordering::SeqCst);
        let e = w.write_all(&vec![3u8; CHUNK]).unwrap_err();
        assert_eq!(e.to_string(), "abandoned");
        drop(w);
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(len, CHUNK as u64);
    }
}
