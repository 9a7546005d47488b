#!/usr/bin/env bash
# Clean-build time each engine adds: a tiny crate depending only on that
# engine (plus a baseline crate with no dependency), built from clean with
# -j 2, debug and release. Dependencies are fetched first (not timed), the
# timed builds run --offline. Crate versions are pinned as in Cargo.toml.
#
#   ./build-times.sh [engines...]     default: baseline redb fjall sqlite
#   ./build-times.sh rocksdb          rocksdb (C++; needs libclang for bindgen)
#
# Prints a Markdown table; run nothing else on the machine meanwhile.
set -euo pipefail

engines=("$@")
[ ${#engines[@]} -eq 0 ] && engines=(baseline redb fjall sqlite)
work=$(mktemp -d /tmp/store-choice-build.XXXXXX)
trap 'rm -rf "$work"' EXIT

dep_of() {
  case "$1" in
    baseline) echo "" ;;
    redb) echo 'redb = "=5.0.0"' ;;
    fjall) echo 'fjall = "=3.1.13"' ;;
    sqlite) echo 'rusqlite = { version = "=0.43.0", features = ["bundled"] }' ;;
    rocksdb) echo 'rocksdb = "=0.25.0"' ;;
    *) echo "unknown engine $1" >&2; exit 2 ;;
  esac
}

main_of() {
  case "$1" in
    baseline) echo 'fn main() { println!("ok"); }' ;;
    redb) echo 'fn main() { let p = std::env::temp_dir().join("probe.redb"); let db = redb::Database::create(&p).unwrap(); drop(db); std::fs::remove_file(p).unwrap(); }' ;;
    fjall) echo 'fn main() { let p = std::env::temp_dir().join("probe.fjall"); let db = fjall::Database::builder(&p).temporary(true).open().unwrap(); drop(db); }' ;;
    sqlite) echo 'fn main() { let c = rusqlite::Connection::open_in_memory().unwrap(); c.execute_batch("select 1").unwrap(); }' ;;
    rocksdb) echo 'fn main() { let p = std::env::temp_dir().join("probe.rocksdb"); let db = rocksdb::DB::open_default(&p).unwrap(); drop(db); let _ = std::fs::remove_dir_all(p); }' ;;
  esac
}

busy() { awk '/^cpu /{print ($2+$3+$4+$7+$8+$9)/100}' /proc/stat; }

echo "| crate | crates compiled | debug: wall s | debug: CPU s | release: wall s | release: CPU s | others' CPU meanwhile, cores (debug / release) | release binary, MiB |"
echo "|---|---|---|---|---|---|---|---|"
for e in "${engines[@]}"; do
  d="$work/probe-$e"
  mkdir -p "$d/src"
  cat >"$d/Cargo.toml" <<EOF
[package]
name = "probe-$e"
version = "0.0.0"
edition = "2024"
publish = false

[workspace]

[dependencies]
$(dep_of "$e")
EOF
  main_of "$e" >"$d/src/main.rs"
  (cd "$d" && cargo fetch -q)
  wall=(); cpu=(); foreign=()
  for prof in debug release; do
    flag=""; [ "$prof" = release ] && flag="--release"
    (cd "$d" && cargo clean -q)
    b0=$(busy)
    /usr/bin/time -o "$work/time" -f "%e %U %S" bash -c "cd '$d' && cargo build $flag -j 2 --offline -q"
    b1=$(busy)
    read -r w u sy <"$work/time"
    wall+=("$w"); c=$(echo "$u + $sy" | bc); cpu+=("$c")
    foreign+=("$(echo "scale=2; ($b1 - $b0 - $c) / $w" | bc)")
  done
  (cd "$d" && ./target/release/probe-$e >/dev/null)
  ncrates=$(ls "$d/target/release/deps/" | grep -c '\.rlib$' || true)
  size=$(du -m "$d/target/release/probe-$e" | cut -f1)
  printf '| %s | %s | %.1f | %.1f | %.1f | %.1f | %s / %s | %s |\n' "$e" "$ncrates" "${wall[0]}" "${cpu[0]}" "${wall[1]}" "${cpu[1]}" "${foreign[0]}" "${foreign[1]}" "$size"
done
