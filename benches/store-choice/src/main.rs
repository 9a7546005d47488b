//! store-choice: issue 15's storage-engine selection benchmark.
//!
//! `store-choice run ...` is the driver: it runs every phase of every engine
//! in a child process of its own (so memory, open time and caches are
//! per-engine), interleaving the engines, and prints a Markdown report.
//! The other subcommands are the phases; each prints `RESULT <key> <value>`
//! lines on stdout. See README.md.

mod e_fjall;
mod e_redb;
mod e_sqlite;
mod store;
mod workload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use store::{ListQ, Page, Res, Store, Via};
use workload::*;

// ---------------------------------------------------------------- arguments

struct Args(Vec<String>);
impl Args {
    fn get(&self, name: &str) -> Option<&str> {
        let flag = format!("--{name}");
        self.0.iter().position(|a| *a == flag).map(|i| self.0[i + 1].as_str())
    }
    fn str(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_string()
    }
    fn num(&self, name: &str, default: u64) -> u64 {
        self.get(name).map(|v| v.replace('_', "").parse().expect(name)).unwrap_or(default)
    }
    fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|a| *a == format!("--{name}"))
    }
}

/// "redb-qr" is redb with quick repair on, over the same files as "redb".
fn engine_dir(root: &Path, engine: &str) -> PathBuf {
    root.join(engine.trim_end_matches("-qr"))
}

fn open_store(engine: &str, dir: &Path, cache: usize) -> Res<Box<dyn Store>> {
    Ok(match engine {
        "redb" => Box::new(e_redb::open(dir, cache, false)?),
        "redb-qr" => Box::new(e_redb::open(dir, cache, true)?),
        "sqlite" => Box::new(e_sqlite::open(dir, cache)?),
        "fjall" => Box::new(e_fjall::open(dir, cache)?),
        other => return Err(format!("unknown engine {other}").into()),
    })
}

fn result(key: &str, v: impl std::fmt::Display) {
    println!("RESULT {key} {v}");
}

// ---------------------------------------------------------------- /proc

fn proc_status() -> BTreeMap<String, f64> {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mut m = BTreeMap::new();
    for line in s.lines() {
        if let Some((k, v)) = line.split_once(':') {
            if let Some(kb) = v.trim().strip_suffix(" kB") {
                if let Ok(n) = kb.trim().parse::<f64>() {
                    m.insert(k.to_string(), n / 1024.0); // MiB
                }
            }
        }
    }
    m
}

fn proc_io(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}: ")).map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0)
}

/// CPU seconds (user + system, all threads) this process has used.
fn proc_cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // after the comm field: state is f[0]; utime, stime are stat fields 14, 15 => f[11], f[12]
    let tick = 100.0; // USER_HZ on Linux
    (f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)) / tick
}

/// Busy CPU seconds of the whole machine so far (all cores), from /proc/stat.
fn machine_busy_s() -> f64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let l = s.lines().next().unwrap_or("");
    let v: Vec<f64> = l.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 8 {
        return f64::NAN;
    }
    // user nice system idle iowait irq softirq steal
    (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / 100.0
}

fn dir_bytes(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let md = match e.metadata() {
                Ok(m) => m,
                Err(_) => continue,
            };
            if md.is_dir() {
                total += dir_bytes(&e.path());
            } else {
                total += md.len();
            }
        }
    }
    total
}

// ---------------------------------------------------------------- stats

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}
unsafe extern "C" {
    fn clock_gettime(clk: i32, ts: *mut Timespec) -> i32;
}
/// CPU time of the calling thread, ns (CLOCK_THREAD_CPUTIME_ID). Unlike wall
/// time it does not grow while the thread waits for a core, so it is the
/// steadier number on a busy shared machine (it leaves out I/O waits).
fn thread_cpu_ns() -> u64 {
    let mut ts = Timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { clock_gettime(3, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Per-op wall latencies (ns) and the summed thread CPU time.
struct Lat(Vec<u64>, u64);
impl Lat {
    fn new() -> Self {
        Lat(Vec::new(), 0)
    }
    fn push(&mut self, d: Duration) {
        self.0.push(d.as_nanos() as u64);
    }
    fn cpu(&mut self, ns: u64) {
        self.1 += ns;
    }
    fn pct(&mut self, p: f64) -> f64 {
        self.0.sort_unstable();
        if self.0.is_empty() {
            return f64::NAN;
        }
        let i = ((p / 100.0) * (self.0.len() - 1) as f64).round() as usize;
        self.0[i] as f64
    }
    fn total_secs(&self) -> f64 {
        self.0.iter().sum::<u64>() as f64 / 1e9
    }
    /// RESULT lines: p50/p99/max in µs, ops/s over the summed op time, and
    /// the mean thread CPU µs per op.
    fn report(&mut self, key: &str) {
        let n = self.0.len() as f64;
        result(&format!("{key}.p50_us"), format!("{:.1}", self.pct(50.0) / 1e3));
        result(&format!("{key}.p99_us"), format!("{:.1}", self.pct(99.0) / 1e3));
        result(&format!("{key}.max_us"), format!("{:.1}", self.pct(100.0) / 1e3));
        result(&format!("{key}.ops_per_s"), format!("{:.0}", n / self.total_secs()));
        result(&format!("{key}.cpu_us"), format!("{:.1}", self.1 as f64 / n / 1e3));
        result(&format!("{key}.n"), n);
    }
}

/// Read every file of the store once, sequentially, so the OS page cache holds
/// it (as it would on a long-running server with this much RAM).
fn prewarm(dir: &Path) -> u64 {
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 20];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                total += prewarm(&p);
            } else if let Ok(mut f) = std::fs::File::open(&p) {
                use std::io::Read;
                while let Ok(n) = f.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                }
            }
        }
    }
    total
}

// ---------------------------------------------------------------- load / tail

/// Apply `--entries` log entries after the store's applied position.
/// `--mode durable`: every batch commits with fsync. `--mode lazy`: no fsync
/// per batch, a durable commit every `--checkpoint-every` batches and at the end.
fn cmd_load(a: &Args) -> Res<()> {
    let engine = a.str("engine", "redb");
    let dir = engine_dir(Path::new(&a.str("dir", "/work/store-choice-data")), &engine);
    if a.flag("fresh") && dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let entries = a.num("entries", 100_000);
    let persons = a.num("persons", 200_000);
    let batch = a.num("batch", 256) as usize;
    let lazy = a.str("mode", "durable") == "lazy";
    let ckpt = a.num("checkpoint-every", 64);
    let label = a.str("label", "load");
    let cache = a.num("cache-mib", 64) as usize * 1024 * 1024;
    let gen_ = Gen { persons };

    let io0 = proc_io("write_bytes");
    let t_open = Instant::now();
    let mut st = open_store(&engine, &dir, cache)?;
    let start = st.applied()?.map(|p| p + 1).unwrap_or(0);
    result(&format!("{label}.open_ms"), format!("{:.1}", t_open.elapsed().as_secs_f64() * 1e3));
    let end = start + entries;

    let ack = match a.get("ack-file") {
        Some(f) => Some(std::fs::File::create(f)?),
        None => None,
    };
    let mut lat = Lat::new();
    let mut bodies: Vec<Vec<u8>> = (0..batch).map(|_| Vec::with_capacity(1024)).collect();
    let mut logical = 0u64;
    let mut updates = 0u64;
    let mut p = start;
    let mut nb = 0u64;
    let wall = Instant::now();
    while p < end {
        let n = ((end - p) as usize).min(batch);
        let es: Vec<Entry> = (p..p + n as u64).map(|q| gen_.entry(q)).collect();
        for (e, b) in es.iter().zip(bodies.iter_mut()) {
            e.encode_into(b);
            logical += b.len() as u64;
            updates += e.is_update as u64;
        }
        nb += 1;
        let sync = !lazy || nb % ckpt == 0 || p + n as u64 >= end;
        let t = Instant::now();
        st.apply(&es, &bodies[..n], sync)?;
        lat.push(t.elapsed());
        p += n as u64;
        if let Some(f) = &ack {
            // the last position whose commit has returned
            use std::os::unix::fs::FileExt;
            f.write_all_at(format!("{:>20}\n", p - 1).as_bytes(), 0)?;
        }
        if nb % 1000 == 0 {
            eprintln!(
                "  [{engine} {label}] {} / {} entries, {:.0} entries/s",
                p - start,
                entries,
                (p - start) as f64 / wall.elapsed().as_secs_f64()
            );
        }
    }
    let wall_s = wall.elapsed().as_secs_f64();
    let t_close = Instant::now();
    st.close()?;
    let close_ms = t_close.elapsed().as_secs_f64() * 1e3;
    let io1 = proc_io("write_bytes");
    let engine_s = lat.total_secs();
    result(&format!("{label}.entries"), entries);
    result(&format!("{label}.updates"), updates);
    result(&format!("{label}.batches"), nb);
    result(&format!("{label}.start_pos"), start);
    result(&format!("{label}.engine_s"), format!("{engine_s:.2}"));
    result(&format!("{label}.wall_s"), format!("{wall_s:.2}"));
    result(&format!("{label}.rate"), format!("{:.0}", entries as f64 / engine_s));
    result(&format!("{label}.batch_p50_ms"), format!("{:.2}", lat.pct(50.0) / 1e6));
    result(&format!("{label}.batch_p99_ms"), format!("{:.2}", lat.pct(99.0) / 1e6));
    result(&format!("{label}.batch_max_ms"), format!("{:.1}", lat.pct(100.0) / 1e6));
    result(&format!("{label}.close_ms"), format!("{close_ms:.0}"));
    result(&format!("{label}.logical_bytes"), logical);
    result(&format!("{label}.disk_write_bytes"), io1 - io0);
    result(&format!("{label}.write_amp"), format!("{:.2}", (io1 - io0) as f64 / logical as f64));
    result(&format!("{label}.cpu_s"), format!("{:.2}", proc_cpu_s()));
    let ps = proc_status();
    result(&format!("{label}.hwm_mib"), format!("{:.0}", ps.get("VmHWM").copied().unwrap_or(0.0)));
    Ok(())
}

// ---------------------------------------------------------------- reads

fn digest(d: &mut u64, ids: &[u64]) {
    for &i in ids {
        *d = mix(*d ^ i);
    }
    *d = mix(*d ^ 0xabcdef ^ ids.len() as u64);
}

fn window(rng: &mut Rng, max_id: u64, days: i64) -> (i64, i64) {
    let span = max_id as i64 * MS_PER_ID;
    let w = days * DAY_MS;
    let to = T0_MS + w + (rng.below((span - w).max(1) as u64) as i64);
    (to - w, to)
}

struct ListVariant {
    name: &'static str,
    channel: Option<u8>,
    via: Via,
    n: u64,
}

fn cmd_read(a: &Args) -> Res<()> {
    let engine = a.str("engine", "redb");
    let dir = engine_dir(Path::new(&a.str("dir", "/work/store-choice-data")), &engine);
    let persons = a.num("persons", 200_000);
    let cache = a.num("cache-mib", 64) as usize * 1024 * 1024;
    let gets = a.num("gets", 200_000);
    let pages = a.num("pages", 50_000);
    let lists = a.num("lists", 5_000);
    let round = a.num("round", 0);

    // Cold open: open + read the applied position, then the first get.
    let t = Instant::now();
    let st = open_store(&engine, &dir, cache)?;
    let applied = st.applied()?.ok_or("empty store")?;
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let end = applied + 1;
    let max_id = end; // ids are positions + 1
    let mut out = Vec::with_capacity(1024);
    let mut rng = Rng::new(0xc01d ^ round);
    let t = Instant::now();
    assert!(st.get(Gen::random_id(&mut rng, end), &mut out)?);
    let first_get_ms = t.elapsed().as_secs_f64() * 1e3;
    result("open_ms", format!("{open_ms:.1}"));
    result("first_get_ms", format!("{first_get_ms:.2}"));
    result("applied", applied);

    // Cold-ish point reads: 2000 random gets right after the open.
    let mut cold = Lat::new();
    for _ in 0..2000 {
        let id = Gen::random_id(&mut rng, end);
        let c = thread_cpu_ns();
        let t = Instant::now();
        assert!(st.get(id, &mut out)?);
        cold.push(t.elapsed());
        cold.cpu(thread_cpu_ns() - c);
    }
    cold.report("cold_get");

    // Warm the OS page cache (not the engine cache) with the store's files.
    let t = Instant::now();
    let warmed = prewarm(&dir);
    result("prewarm_ms", format!("{:.0}", t.elapsed().as_secs_f64() * 1e3));
    result("prewarm_mib", format!("{:.0}", warmed as f64 / 1048576.0));

    let variants = [
        ListVariant { name: "list_voice_chidx", channel: Some(CH_VOICE), via: Via::ChannelIndex, n: lists },
        ListVariant { name: "list_fax_chidx", channel: Some(CH_FAX), via: Via::ChannelIndex, n: lists },
        ListVariant { name: "list_voice_timeidx", channel: Some(CH_VOICE), via: Via::TimeIndex, n: lists },
        ListVariant { name: "list_fax_timeidx", channel: Some(CH_FAX), via: Via::TimeIndex, n: lists / 5 },
        ListVariant { name: "list_any_timeidx", channel: None, via: Via::TimeIndex, n: lists },
    ];

    // Correctness digest + warm-up, with a fixed seed: must agree across engines.
    let mut page = Page::default();
    {
        let mut r = Rng::new(0xd16e57);
        let mut d = 0u64;
        for _ in 0..2000 {
            let id = Gen::random_id(&mut r, end);
            assert!(st.get(id, &mut out)?);
            let h = decode_hdr(&out);
            digest(&mut d, &[id, h.person, h.occurred as u64, h.status as u64]);
        }
        result("digest.get", format!("{d:016x}"));
        let mut d = 0u64;
        let mut found = 0;
        for _ in 0..2000 {
            let id = Gen::random_id(&mut r, end);
            if let Some(x) = Gen::ext_of(id) {
                let got = st.get_ext(std::str::from_utf8(&x).unwrap(), &mut out)?;
                assert_eq!(got, Some(id));
                found += 1;
                digest(&mut d, &[id]);
            }
        }
        result("digest.ext", format!("{d:016x}/{found}"));
        let mut d = 0u64;
        for _ in 0..5000 {
            st.person_page(r.below(persons), 25, &mut page)?;
            digest(&mut d, &page.ids);
        }
        result("digest.person", format!("{d:016x}"));
        for v in &variants {
            let mut d = 0u64;
            for _ in 0..200 {
                let (from, to) = window(&mut r, max_id, 30);
                st.list(&ListQ { channel: v.channel, from, to, limit: 25, via: v.via }, &mut page)?;
                digest(&mut d, &page.ids);
            }
            result(&format!("digest.{}", v.name), format!("{d:016x}"));
        }
    }

    // Warm point reads.
    let mut lat = Lat::new();
    for _ in 0..gets {
        let id = Gen::random_id(&mut rng, end);
        let c = thread_cpu_ns();
        let t = Instant::now();
        let ok = st.get(id, &mut out)?;
        lat.push(t.elapsed());
        lat.cpu(thread_cpu_ns() - c);
        assert!(ok);
    }
    lat.report("get");

    let mut lat = Lat::new();
    let mut n = 0;
    while n < gets / 2 {
        let id = Gen::random_id(&mut rng, end);
        let Some(x) = Gen::ext_of(id) else { continue };
        let xs = std::str::from_utf8(&x).unwrap();
        let c = thread_cpu_ns();
        let t = Instant::now();
        let got = st.get_ext(xs, &mut out)?;
        lat.push(t.elapsed());
        lat.cpu(thread_cpu_ns() - c);
        assert_eq!(got, Some(id));
        n += 1;
    }
    lat.report("get_ext");

    let mut lat = Lat::new();
    let mut rows = 0usize;
    for _ in 0..pages {
        let person = rng.below(persons);
        let c = thread_cpu_ns();
        let t = Instant::now();
        st.person_page(person, 25, &mut page)?;
        lat.push(t.elapsed());
        lat.cpu(thread_cpu_ns() - c);
        rows += page.ids.len();
    }
    lat.report("person_page");
    result("person_page.rows_avg", format!("{:.1}", rows as f64 / pages as f64));

    for v in &variants {
        let mut lat = Lat::new();
        let (mut rows, mut scanned) = (0usize, 0usize);
        for _ in 0..v.n {
            let (from, to) = window(&mut rng, max_id, 30);
            let q = ListQ { channel: v.channel, from, to, limit: 25, via: v.via };
            let c = thread_cpu_ns();
            let t = Instant::now();
            st.list(&q, &mut page)?;
            lat.push(t.elapsed());
            lat.cpu(thread_cpu_ns() - c);
            rows += page.ids.len();
            scanned += page.scanned;
        }
        lat.report(v.name);
        result(&format!("{}.rows_avg", v.name), format!("{:.1}", rows as f64 / v.n as f64));
        if engine != "sqlite" {
            result(&format!("{}.scanned_avg", v.name), format!("{:.0}", scanned as f64 / v.n as f64));
        }
    }

    let ps = proc_status();
    for k in ["VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"] {
        result(&format!("mem.{k}_mib"), format!("{:.1}", ps.get(k).copied().unwrap_or(f64::NAN)));
    }
    st.close()?;
    result("read.cpu_s", format!("{:.2}", proc_cpu_s()));
    Ok(())
}

/// Open a store (after a crash), time it, and check that the recorded log
/// position and the data agree: the last applied entry is there with its
/// index entry, the next created id is not.
fn cmd_recover(a: &Args) -> Res<()> {
    let engine = a.str("engine", "redb");
    let dir = engine_dir(Path::new(&a.str("dir", "/work/store-choice-data")), &engine);
    let persons = a.num("persons", 200_000);
    let cache = a.num("cache-mib", 64) as usize * 1024 * 1024;
    let gen_ = Gen { persons };
    let t = Instant::now();
    let st = open_store(&engine, &dir, cache)?;
    let applied = st.applied()?.ok_or("empty store")?;
    result("recover.open_ms", format!("{:.1}", t.elapsed().as_secs_f64() * 1e3));
    result("recover.applied", applied);
    let e = gen_.entry(applied);
    let mut out = Vec::new();
    let present = st.get(e.id, &mut out)?;
    let h = decode_hdr(&out);
    let same = present && h.person == e.person && h.occurred == e.occurred && h.status == e.status;
    let mut page = Page::default();
    st.person_page(e.person, 1000, &mut page)?;
    let indexed = page.ids.contains(&e.id);
    let next_create = (applied + 1..).find(|&q| !is_update(q)).unwrap();
    let absent = !st.get(next_create + 1, &mut out)?;
    result("recover.consistent", (same && indexed && absent) as u8);
    st.close()?;
    Ok(())
}

/// Crash test: for each engine, apply the log (lazy mode: fsync every 64
/// batches) in a child, SIGKILL it after --kill-after seconds of applying,
/// then reopen and check. Reports commits lost = acknowledged - recovered.
fn cmd_crash(a: &Args) -> Res<()> {
    let exe = std::env::current_exe()?;
    let root = a.str("dir", "/work/store-choice-data");
    let engines: Vec<String> = a.str("engines", "redb,sqlite,fjall").split(',').map(String::from).collect();
    let persons = a.num("persons", 200_000).to_string();
    let kill_after = a.num("kill-after", 10);
    let mode = a.str("mode", "lazy");
    for e in &engines {
        let ack = format!("/tmp/store-choice-ack-{e}");
        let _ = std::fs::remove_file(&ack);
        let mut child = Command::new(&exe)
            .args(["load", "--engine", e, "--dir", &root, "--persons", &persons, "--mode", &mode])
            .args(["--entries", "100000000", "--label", "crash", "--ack-file", &ack])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        // wait for the first acknowledged commit (fjall may replay its journal first)
        let t = Instant::now();
        while std::fs::read_to_string(&ack).map(|s| s.trim().is_empty()).unwrap_or(true) {
            std::thread::sleep(Duration::from_millis(50));
            if t.elapsed() > Duration::from_secs(300) {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(kill_after));
        child.kill()?; // SIGKILL
        child.wait()?;
        let acked: u64 = std::fs::read_to_string(&ack)?.trim().parse()?;
        let out = Command::new(&exe)
            .args(["recover", "--engine", e, "--dir", &root, "--persons", &persons])
            .stderr(std::process::Stdio::inherit())
            .output()?;
        let so = String::from_utf8_lossy(&out.stdout);
        let get = |k: &str| {
            so.lines().find_map(|l| l.strip_prefix(&format!("RESULT {k} "))).unwrap_or("?").to_string()
        };
        let recovered: u64 = get("recover.applied").parse().unwrap_or(0);
        println!(
            "| {e} | {mode} | {kill_after} | {acked} | {recovered} | {} | {} | {} |",
            acked.saturating_sub(recovered),
            get("recover.open_ms"),
            if get("recover.consistent") == "1" { "yes" } else { "NO" }
        );
    }
    Ok(())
}

fn cmd_explain(a: &Args) -> Res<()> {
    let dir = engine_dir(Path::new(&a.str("dir", "/work/store-choice-data")), "sqlite");
    let s = e_sqlite::open(&dir, 64 << 20)?;
    for l in s.explain()? {
        println!("{l}");
    }
    Ok(())
}

// ---------------------------------------------------------------- driver

type Results = BTreeMap<(String, String), Vec<String>>; // (engine, key) -> values per round

/// Runs one phase in a child process and records its RESULT lines. Also
/// records `<phase>.foreign_load`: the CPU that *other* processes on this
/// shared machine used while the phase ran, in cores (0 = idle machine,
/// 1 = one of the two cores busy elsewhere).
fn spawn(exe: &Path, args: &[String], engine: &str, phase: &str, res: &mut Results, log: &mut String) -> Res<()> {
    let t = Instant::now();
    let busy0 = machine_busy_s();
    let outp = Command::new(exe).args(args).stderr(std::process::Stdio::inherit()).output()?;
    let stdout = String::from_utf8_lossy(&outp.stdout).to_string();
    log.push_str(&format!("$ store-choice {}\n{}", args.join(" "), stdout));
    if !outp.status.success() {
        return Err(format!("child failed: {:?} {}", args, outp.status).into());
    }
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("RESULT ") {
            let (k, v) = rest.split_once(' ').unwrap();
            res.entry((engine.to_string(), k.to_string())).or_default().push(v.to_string());
        }
    }
    let wall = t.elapsed().as_secs_f64();
    let child_cpu = res
        .get(&(engine.to_string(), format!("{phase}.cpu_s")))
        .and_then(|v| v.last())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    let foreign = ((machine_busy_s() - busy0 - child_cpu) / wall).max(0.0);
    res.entry((engine.to_string(), format!("{phase}.foreign_load"))).or_default().push(format!("{foreign:.2}"));
    res.entry((engine.to_string(), format!("{phase}.phase_wall_s"))).or_default().push(format!("{wall:.1}"));
    log.push_str(&format!("# {engine} {phase}: wall {wall:.1}s, child cpu {child_cpu:.1}s, foreign load {foreign:.2} cores\n"));
    eprintln!("  ({engine} {phase}: took {wall:.1}s, child cpu {child_cpu:.1}s, foreign load {foreign:.2} cores)");
    Ok(())
}

fn meminfo_cached_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("Cached:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map(|k| k / 1024.0)
        .unwrap_or(f64::NAN)
}

/// sync + drop the page cache; returns (worked, Cached MiB before, after).
fn drop_caches() -> (bool, f64, f64) {
    let before = meminfo_cached_mib();
    let _ = Command::new("sync").status();
    let ok = std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok();
    (ok, before, meminfo_cached_mib())
}

fn median(v: &[String]) -> Option<f64> {
    let mut xs: Vec<f64> = v.iter().filter_map(|s| s.parse().ok()).collect();
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = xs.len();
    Some(if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 })
}

fn cmd_run(a: &Args) -> Res<()> {
    let exe = std::env::current_exe()?;
    let root = a.str("dir", "/work/store-choice-data");
    let engines: Vec<String> = a.str("engines", "redb,sqlite,fjall").split(',').map(String::from).collect();
    let records = a.num("entries", 2_000_000);
    let persons = a.num("persons", 200_000);
    let tail = a.num("tail", 100_000);
    let tail_rounds = a.num("tail-rounds", 2);
    let read_rounds = a.num("read-rounds", 3);
    let batch = a.num("batch", 256);
    let cache = a.num("cache-mib", 64);
    let gets = a.num("gets", 200_000);
    let pages = a.num("pages", 50_000);
    let lists = a.num("lists", 5_000);
    let load_mode = a.str("load-mode", "durable");
    let out_path = a.str("out", "results.md");
    let common = |e: &str| -> Vec<String> {
        vec![
            "--engine".into(),
            e.into(),
            "--dir".into(),
            root.clone(),
            "--persons".into(),
            persons.to_string(),
            "--batch".into(),
            batch.to_string(),
            "--cache-mib".into(),
            cache.to_string(),
        ]
    };
    let mut res: Results = BTreeMap::new();
    let mut log = String::new();
    let t_all = Instant::now();

    // 1. Initial load, in `--load-slices` slices, the engines taking turns
    //    (so a burst of load from elsewhere on the shared machine hits all).
    let slices = a.num("load-slices", 4);
    for s in 0..slices {
        for e in &engines {
            let n = records / slices + if s == slices - 1 { records % slices } else { 0 };
            eprintln!("== load {e}: slice {s}: {n} entries, mode {load_mode}");
            let mut args = vec!["load".to_string(), "--label".into(), "load".into()];
            if s == 0 {
                args.push("--fresh".into());
            }
            args.extend(common(e));
            args.extend(["--entries".into(), n.to_string(), "--mode".into(), load_mode.clone()]);
            spawn(&exe, &args, e, "load", &mut res, &mut log)?;
        }
    }
    for e in &engines {
        // Aggregate the slices: totals for rates and write amplification.
        let sum = |k: &str| -> f64 {
            res.get(&(e.clone(), k.to_string())).map(|v| v.iter().filter_map(|x| x.parse::<f64>().ok()).sum()).unwrap_or(f64::NAN)
        };
        let rate = sum("load.entries") / sum("load.engine_s");
        let wa = sum("load.disk_write_bytes") / sum("load.logical_bytes");
        let (cpu, eng) = (sum("load.cpu_s"), sum("load.engine_s"));
        let hwm = res.get(&(e.clone(), "load.hwm_mib".to_string())).and_then(|v| v.iter().filter_map(|x| x.parse::<f64>().ok()).reduce(f64::max)).unwrap_or(f64::NAN);
        for (k, v) in [("load.total_rate", rate), ("load.total_write_amp", wa), ("load.total_cpu_s", cpu), ("load.total_engine_s", eng), ("load.max_hwm_mib", hwm)] {
            res.insert((e.clone(), k.to_string()), vec![format!("{v:.3}")]);
        }
        res.entry((e.clone(), "size_after_load".into())).or_default().push(dir_bytes(&engine_dir(Path::new(&root), e)).to_string());
    }
    // 2. Tails on the populated stores, interleaved: durable then lazy, each engine in turn.
    for round in 0..tail_rounds {
        for mode in ["durable", "lazy"] {
            for e in &engines {
                eprintln!("== tail round {round} {mode} {e}: {tail} entries");
                let mut args = vec!["load".to_string(), "--label".into(), format!("tail_{mode}")];
                args.extend(common(e));
                args.extend(["--entries".into(), tail.to_string(), "--mode".into(), mode.into()]);
                spawn(&exe, &args, e, &format!("tail_{mode}"), &mut res, &mut log)?;
            }
        }
    }
    for e in &engines {
        res.entry((e.clone(), "size_after_tails".into())).or_default().push(dir_bytes(&engine_dir(Path::new(&root), e)).to_string());
    }
    // 3. Reads: each round, each engine in its own process after dropping the page cache.
    for round in 0..read_rounds {
        for e in &engines {
            let (ok, before, after) = drop_caches();
            eprintln!("== read round {round} {e} (drop_caches ok={ok}, Cached {before:.0} -> {after:.0} MiB)");
            res.entry((e.clone(), "drop_caches_ok".into())).or_default().push((ok as u8).to_string());
            res.entry((e.clone(), "cached_after_drop_mib".into())).or_default().push(format!("{after:.0}"));
            let mut args = vec!["read".to_string()];
            args.extend(common(e));
            args.extend([
                "--gets".into(),
                gets.to_string(),
                "--pages".into(),
                pages.to_string(),
                "--lists".into(),
                lists.to_string(),
                "--round".into(),
                round.to_string(),
            ]);
            spawn(&exe, &args, e, "read", &mut res, &mut log)?;
        }
    }
    for e in &engines {
        res.entry((e.clone(), "size_after_reads".into())).or_default().push(dir_bytes(&engine_dir(Path::new(&root), e)).to_string());
    }
    let total_s = t_all.elapsed().as_secs_f64();
    let mut put = |k: &str, v: String| {
        res.insert(("_run".to_string(), k.to_string()), vec![v]);
    };
    put("engines", engines.join(","));
    put("records", records.to_string());
    put("slices", slices.to_string());
    put("load_mode", load_mode.clone());
    put("tail", tail.to_string());
    put("tail_rounds", tail_rounds.to_string());
    put("persons", persons.to_string());
    put("batch", batch.to_string());
    put("cache", cache.to_string());
    put("read_rounds", read_rounds.to_string());
    put("total_s", format!("{total_s:.0}"));
    let mut tsv = String::new();
    for ((e, k), v) in &res {
        tsv.push_str(&format!("{e}\t{k}\t{}\n", v.join(",")));
    }
    std::fs::write(format!("{out_path}.tsv"), &tsv)?;
    std::fs::write(format!("{out_path}.raw.txt"), &log)?;
    let md = report(&res);
    std::fs::write(&out_path, &md)?;
    println!("{md}");
    Ok(())
}

/// Rebuild the Markdown report from a run's `.tsv` (engine, key, values).
fn cmd_report(a: &Args) -> Res<()> {
    let tsv = std::fs::read_to_string(a.get("tsv").ok_or("--tsv FILE")?)?;
    let mut res: Results = BTreeMap::new();
    for l in tsv.lines() {
        let mut it = l.splitn(3, '\t');
        let (e, k, v) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap_or(""));
        res.insert((e.to_string(), k.to_string()), v.split(',').map(String::from).collect());
    }
    let md = report(&res);
    if let Some(o) = a.get("out") {
        std::fs::write(o, &md)?;
    }
    println!("{md}");
    Ok(())
}

fn report(res: &Results) -> String {
    let run = |k: &str| res.get(&("_run".to_string(), k.to_string())).map(|v| v.join(",")).unwrap_or_default();
    let num = |k: &str| run(k).parse::<u64>().unwrap_or(0);
    let engines: Vec<String> = run("engines").split(',').map(String::from).collect();
    let (records, slices, tail, tail_rounds) = (num("records"), num("slices"), num("tail"), num("tail_rounds"));
    let load_mode = run("load_mode");
    let applied_end = records + tail_rounds * 2 * tail;
    let live = Gen::live_count(applied_end);
    let mut md = String::new();
    md.push_str(&format!(
        "Run: {records} initial log entries ({load_mode}, {slices} slices, engines taking turns), then {tail_rounds} x (durable, lazy) tails of {tail} entries; {} persons; batch {}; engine cache {} MiB; {} read rounds. Log entries applied: {applied_end}, live interactions: {live}. Wall time {} s.\n\n",
        run("persons"), run("batch"), run("cache"), run("read_rounds"), run("total_s")
    ));
    let med = |e: &str, k: &str| res.get(&(e.to_string(), k.to_string())).and_then(|v| median(v));
    let header = format!("| metric | {} |\n|---|{}\n", engines.join(" | "), "---|".repeat(engines.len()));
    let row = |md: &mut String, label: &str, key: &str, scale: f64, digits: usize| {
        let cells: Vec<String> = engines
            .iter()
            .map(|e| med(e, key).map(|v| format!("{:.*}", digits, v * scale)).unwrap_or("-".into()))
            .collect();
        md.push_str(&format!("| {label} | {} |\n", cells.join(" | ")));
    };
    md.push_str("### Writes (entries/s over the time spent in apply; batch = one transaction)\n\n");
    md.push_str(&header);
    row(&mut md, &format!("initial load, {load_mode}: entries/s"), "load.total_rate", 1.0, 0);
    row(&mut md, "initial load: batch p50 ms (median over slices)", "load.batch_p50_ms", 1.0, 2);
    row(&mut md, "initial load: batch p99 ms (median over slices)", "load.batch_p99_ms", 1.0, 2);
    row(&mut md, "initial load: batch max ms (median over slices)", "load.batch_max_ms", 1.0, 1);
    row(&mut md, "initial load: bytes written to disk / logical record bytes", "load.total_write_amp", 1.0, 2);
    row(&mut md, "initial load: peak RSS MiB", "load.max_hwm_mib", 1.0, 0);
    row(&mut md, "initial load: process CPU s (all threads)", "load.total_cpu_s", 1.0, 1);
    row(&mut md, "initial load: apply time s", "load.total_engine_s", 1.0, 1);
    row(&mut md, "initial load: other processes' CPU meanwhile, cores", "load.foreign_load", 1.0, 2);
    row(&mut md, "tail durable (fsync every batch): entries/s", "tail_durable.rate", 1.0, 0);
    row(&mut md, "tail durable: batch p50 ms", "tail_durable.batch_p50_ms", 1.0, 2);
    row(&mut md, "tail durable: batch p99 ms", "tail_durable.batch_p99_ms", 1.0, 2);
    row(&mut md, "tail durable: write amp", "tail_durable.write_amp", 1.0, 2);
    row(&mut md, "tail lazy (fsync every 64 batches): entries/s", "tail_lazy.rate", 1.0, 0);
    row(&mut md, "tail lazy: batch p50 ms", "tail_lazy.batch_p50_ms", 1.0, 2);
    row(&mut md, "tail lazy: batch p99 ms", "tail_lazy.batch_p99_ms", 1.0, 2);
    row(&mut md, "tail lazy: write amp", "tail_lazy.write_amp", 1.0, 2);
    row(&mut md, "tail durable: process CPU s per 100k entries", "tail_durable.cpu_s", 100_000.0 / tail as f64, 1);
    row(&mut md, "tail lazy: process CPU s per 100k entries", "tail_lazy.cpu_s", 100_000.0 / tail as f64, 1);
    row(&mut md, "tails: other processes' CPU meanwhile (durable), cores", "tail_durable.foreign_load", 1.0, 2);
    row(&mut md, "tails: other processes' CPU meanwhile (lazy), cores", "tail_lazy.foreign_load", 1.0, 2);
    md.push_str("\n### Disk\n\n");
    md.push_str(&header);
    row(&mut md, "bytes on disk after load / live record", "size_after_load", 1.0 / Gen::live_count(records) as f64, 0);
    row(&mut md, "bytes on disk after tails / live record", "size_after_tails", 1.0 / live as f64, 0);
    row(&mut md, "bytes on disk after reads (reopened) / live record", "size_after_reads", 1.0 / live as f64, 0);
    row(&mut md, "total GiB after reads", "size_after_reads", 1.0 / (1u64 << 30) as f64, 2);
    md.push_str("\n### Reads (median of read rounds; each round a fresh process after drop_caches; cold numbers first, then the page cache is warmed and the rest measured with the engine cache capped)\n\n");
    md.push_str(&header);
    row(&mut md, "cold open + read applied position, ms", "open_ms", 1.0, 1);
    row(&mut md, "first get after cold open, ms", "first_get_ms", 1.0, 2);
    row(&mut md, "cold gets (first 2000): p50 µs", "cold_get.p50_us", 1.0, 1);
    row(&mut md, "cold gets (first 2000): p99 µs", "cold_get.p99_us", 1.0, 1);
    row(&mut md, "then: read all store files once into the page cache, ms", "prewarm_ms", 1.0, 0);
    for (label, k) in [
        ("get by id", "get"),
        ("externalId -> id -> record", "get_ext"),
        ("person page (25 newest)", "person_page"),
        ("list channel=voice, 30 d, (channel,occurred,id) index", "list_voice_chidx"),
        ("list channel=fax (1%), 30 d, (channel,occurred,id) index", "list_fax_chidx"),
        ("list channel=voice, 30 d, (occurred,id) index + filter", "list_voice_timeidx"),
        ("list channel=fax (1%), 30 d, (occurred,id) index + filter", "list_fax_timeidx"),
        ("list no filter, 30 d, (occurred,id) index", "list_any_timeidx"),
    ] {
        row(&mut md, &format!("{label}: p50 µs"), &format!("{k}.p50_us"), 1.0, 1);
        row(&mut md, &format!("{label}: p99 µs"), &format!("{k}.p99_us"), 1.0, 1);
        row(&mut md, &format!("{label}: ops/s"), &format!("{k}.ops_per_s"), 1.0, 0);
        row(&mut md, &format!("{label}: thread CPU µs/op (mean)"), &format!("{k}.cpu_us"), 1.0, 1);
    }
    row(&mut md, "person page: rows returned (avg)", "person_page.rows_avg", 1.0, 1);
    row(&mut md, "list fax via time index: index entries scanned (avg)", "list_fax_timeidx.scanned_avg", 1.0, 0);
    md.push_str("\n### Memory after the read benchmarks (engine cache capped)\n\n");
    md.push_str(&header);
    for k in ["VmRSS", "RssAnon", "RssFile", "VmHWM"] {
        row(&mut md, &format!("{k} MiB"), &format!("mem.{k}_mib"), 1.0, 1);
    }
    row(&mut md, "read phase: process CPU s (whole read process)", "read.cpu_s", 1.0, 1);
    row(&mut md, "read phase: other processes' CPU meanwhile, cores", "read.foreign_load", 1.0, 2);
    row(&mut md, "drop_caches worked (1 = yes)", "drop_caches_ok", 1.0, 0);
    row(&mut md, "page cache 'Cached' MiB right after the drop", "cached_after_drop_mib", 1.0, 0);
    // Digest agreement
    md.push_str("\n### Result agreement (digests of the ids each query returned)\n\n");
    let mut agree = true;
    let dkeys: Vec<String> =
        res.keys().filter(|(_, k)| k.starts_with("digest.")).map(|(_, k)| k.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    for k in &dkeys {
        let vals: Vec<String> = engines.iter().map(|e| res.get(&(e.clone(), k.clone())).map(|v| v.join(",")).unwrap_or_default()).collect();
        let all: std::collections::BTreeSet<String> =
            engines.iter().flat_map(|e| res.get(&(e.clone(), k.clone())).cloned().unwrap_or_default()).collect();
        let same = all.len() == 1;
        agree &= same;
        md.push_str(&format!("- {k}: {} ({})\n", if same { "identical across engines and rounds" } else { "DIFFER" }, vals.join(" / ")));
    }
    md.push_str(&format!("\nAll digests agree: {agree}\n"));
    md
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let cmd = argv.get(1).cloned().unwrap_or_default();
    let a = Args(argv);
    let r = match cmd.as_str() {
        "load" => cmd_load(&a),
        "read" => cmd_read(&a),
        "run" => cmd_run(&a),
        "explain" => cmd_explain(&a),
        "report" => cmd_report(&a),
        "recover" => cmd_recover(&a),
        "crash" => cmd_crash(&a),
        _ => {
            eprintln!("usage: store-choice run|load|read|explain [--flags]; see README.md");
            std::process::exit(2)
        }
    };
    if let Err(e) = r {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
