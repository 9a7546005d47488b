//! Property test of request decoding and validation, over the real gRPC
//! server on 127.0.0.1:0: every method of every service in the descriptor
//! set the server registers for reflection gets arbitrary bytes, and
//! arbitrary messages well typed against its request's descriptor (streams
//! included: a client stream gets one message), with a key that has every
//! right. The claim: no panic, no INTERNAL, no UNKNOWN (nor CANCELLED, which
//! is what a handler that panicked leaves a client with), and the server
//! still answers afterwards.
//!
//! Modest by default (32 cases of each kind per method); more with
//! `GUARD_FUZZ_CASES=N`.

use std::collections::HashMap;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};
use tonic::Code;

use crate::api::input::raw_call;
use crate::support::consts::EVERY_RIGHT_KEY as KEY;

/// One RPC as the descriptor set names it.
#[derive(Debug, Clone)]
struct Method {
    /// `/package.Service/Method`.
    path: String,
    /// The request message's full name, `.package.Message`.
    input: String,
}

/// Every message type of the descriptor set by full name (nested types
/// included), and every method of every service.
fn schema() -> (HashMap<String, DescriptorProto>, Vec<Method>) {
    let set = FileDescriptorSet::decode(compliance_guard::pb::FILE_DESCRIPTOR_SET).unwrap();
    fn add(prefix: &str, m: &DescriptorProto, out: &mut HashMap<String, DescriptorProto>) {
        let name = format!("{prefix}.{}", m.name());
        for nested in &m.nested_type {
            add(&name, nested, out);
        }
        out.insert(name, m.clone());
    }
    let mut messages = HashMap::new();
    let mut methods = Vec::new();
    for file in &set.file {
        let prefix = if file.package().is_empty() {
            String::new()
        } else {
            format!(".{}", file.package())
        };
        for m in &file.message_type {
            add(&prefix, m, &mut messages);
        }
        for service in &file.service {
            for method in &service.method {
                methods.push(Method {
                    path: format!("/{}.{}/{}", file.package(), service.name(), method.name()),
                    input: method.input_type().to_owned(),
                });
            }
        }
    }
    (messages, methods)
}

/// Where a generated message takes its choices from: numbers and strings
/// drawn by proptest, read in turn (zeros and empty strings once used up).
struct Source {
    numbers: Vec<u64>,
    strings: Vec<String>,
    n: usize,
    s: usize,
}

impl Source {
    fn next(&mut self) -> u64 {
        let v = self.numbers.get(self.n).copied().unwrap_or(0);
        self.n += 1;
        v
    }

    fn text(&mut self) -> String {
        let v = self.strings.get(self.s).cloned().unwrap_or_default();
        self.s += 1;
        v
    }

    /// A number, often one at an edge.
    fn int(&mut self) -> i64 {
        const EDGES: &[i64] = &[
            0,
            1,
            -1,
            i64::MIN,
            i64::MAX,
            i32::MIN as i64,
            i32::MAX as i64,
            u32::MAX as i64,
            100,
            101,
            1_000_000_000,
        ];
        let pick = self.next();
        if pick.is_multiple_of(2) {
            EDGES[(pick / 2 % EDGES.len() as u64) as usize]
        } else {
            self.next() as i64
        }
    }
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(tag: i32, wire: u64, out: &mut Vec<u8>) {
    varint(((tag as u64) << 3) | wire, out);
}

fn delimited(tag: i32, bytes: &[u8], out: &mut Vec<u8>) {
    key(tag, 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// A timestamp: mostly seconds and nanoseconds at the edges of what
/// proto3 JSON, chrono and the engine take.
fn timestamp(src: &mut Source) -> Vec<u8> {
    const SECONDS: &[i64] = &[
        i64::MIN,
        i64::MAX,
        -62_167_219_200, // year 0
        -62_135_596_800, // 0001-01-01
        -62_135_596_801,
        -2_208_988_801, // 1899-12-31T23:59:59Z
        -2_208_988_800, // 1900-01-01
        0,
        1_764_601_200,   // 2025-12-01T15:00Z
        1_798_761_600,   // 2027-01-01
        253_402_300_799, // 9999-12-31T23:59:59Z
        253_402_300_800,
        8_210_266_876_799, // chrono's last year
    ];
    const NANOS: &[i32] = &[0, 0, 0, -1, 999_999_999, 1_000_000_000, i32::MAX, i32::MIN];
    let pick = src.next();
    let seconds = if pick % 4 == 3 {
        src.int()
    } else {
        let base = SECONDS[(pick / 4 % SECONDS.len() as u64) as usize];
        // Around now for a quarter of the picks.
        if pick % 4 == 2 {
            chrono::Utc::now().timestamp() + (src.next() % 20_000) as i64 - 10_000
        } else {
            base
        }
    };
    let nanos = NANOS[(src.next() % NANOS.len() as u64) as usize];
    let mut out = Vec::new();
    if seconds != 0 {
        key(1, 0, &mut out);
        varint(seconds as u64, &mut out);
    }
    if nanos != 0 {
        key(2, 0, &mut out);
        varint(nanos as i64 as u64, &mut out);
    }
    out
}

/// A message of type `name` with every field of the right wire type and a
/// value drawn from `src`: present or not, repeated 0 to 3 times, nested
/// messages down to `depth`.
fn message(
    schema: &HashMap<String, DescriptorProto>,
    name: &str,
    src: &mut Source,
    depth: u32,
) -> Vec<u8> {
    if name == ".google.protobuf.Timestamp" {
        return timestamp(src);
    }
    let mut out = Vec::new();
    let Some(m) = schema.get(name) else {
        // A type outside the set: any bytes (as a length-delimited field).
        return src.text().into_bytes();
    };
    for field in &m.field {
        let copies = if field.label() == Label::Repeated {
            src.next() % 4
        } else {
            u64::from(!src.next().is_multiple_of(3))
        };
        for _ in 0..copies {
            let tag = field.number();
            match field.r#type() {
                Type::String => delimited(tag, src.text().as_bytes(), &mut out),
                Type::Bytes => delimited(tag, src.text().as_bytes(), &mut out),
                Type::Bool => {
                    key(tag, 0, &mut out);
                    varint(src.next() % 2, &mut out);
                }
                Type::Int32 | Type::Int64 | Type::Uint32 | Type::Uint64 | Type::Enum => {
                    key(tag, 0, &mut out);
                    varint(src.int() as u64, &mut out);
                }
                Type::Sint32 | Type::Sint64 => {
                    let v = src.int();
                    key(tag, 0, &mut out);
                    varint(((v << 1) ^ (v >> 63)) as u64, &mut out);
                }
                Type::Fixed64 | Type::Sfixed64 | Type::Double => {
                    key(tag, 1, &mut out);
                    let v = if field.r#type() == Type::Double {
                        [0.0, -1.5, 1e308, f64::NAN, f64::INFINITY, 50.0][(src.next() % 6) as usize]
                            .to_bits()
                    } else {
                        src.int() as u64
                    };
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Type::Fixed32 | Type::Sfixed32 | Type::Float => {
                    key(tag, 5, &mut out);
                    out.extend_from_slice(&(src.int() as u32).to_le_bytes());
                }
                Type::Message | Type::Group => {
                    let inner = if depth == 0 {
                        Vec::new()
                    } else {
                        message(schema, field.type_name(), src, depth - 1)
                    };
                    delimited(tag, &inner, &mut out);
                }
            }
        }
    }
    out
}

/// Strings worth trying: arbitrary text, the vocabularies and id forms the
/// server knows (so that validation is passed and deeper code reached),
/// and long values.
fn text() -> impl Strategy<Value = String> {
    const KNOWN: &[&str] = &[
        "",
        "null",
        "voice",
        "text",
        "email",
        "mail",
        "chat",
        "outbound",
        "inbound",
        "attempted",
        "succeeded",
        "failed",
        "scheduled",
        "inProgress",
        "canceled",
        "voiceSpokeWithFirstParty",
        "voiceDisconnectedWhileQueuedOnHold",
        "voiceRangNoPickup",
        "textConvoClosedByAgent",
        "ceaseCommunication",
        "mediumOptOut",
        "doNotInteract",
        "inconvenientTime",
        "letter",
        "dispute",
        "audio/mpeg",
        "solo",
        "add",
        "takeover",
        "inline",
        "attachment",
        "US",
        "US-NY",
        "US-MA",
        "America/New_York",
        "mobilePhone",
        "-createdAt",
        "+startedAt",
        "status",
        "started_at",
        "agentOutcome",
        "BO-AAAA-0001",
        "ext-crm-1",
        "IT-0000-00000001",
        "RS-0000-00000001",
        "CS-AB12-34CD",
        "L1",
        "12.50",
        "09:00",
        "25:99",
        "2026-01-01",
        "opsCollDebt",
        "loanOverdueFirstNotice",
    ];
    prop_oneof![
        4 => ".{0,24}",
        4 => prop::sample::select(KNOWN).prop_map(str::to_owned),
        1 => "(BO|IT|RS|LN|CS)-[A-Z0-9]{4}-[A-Z0-9]{4,8}",
        1 => (0usize..40_000).prop_map(|n| "é".repeat(n)),
    ]
}

fn typed() -> impl Strategy<Value = (Vec<u64>, Vec<String>)> {
    (
        prop::collection::vec(any::<u64>(), 0..160),
        prop::collection::vec(text(), 0..24),
    )
}

/// The codes that must never come back: INTERNAL and UNKNOWN (a broken
/// invariant, an error tonic could not classify), and CANCELLED (what a
/// client sees when a handler panics and its stream is dropped).
fn forbidden(code: Code) -> bool {
    matches!(code, Code::Internal | Code::Unknown | Code::Cancelled)
}

#[test]
fn every_rpc_answers_arbitrary_bytes_and_arbitrary_messages_without_internal_or_panic() {
    let cases: u32 = std::env::var("GUARD_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(crate::support::server::options().sync().serving());
    let channel = rt.block_on(async {
        tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    });
    let (messages, methods) = schema();
    // Both services, every method: 11 of ComplianceGuard, 15 of
    // Interactions (the generated clients name the same ones).
    assert_eq!(methods.len(), 26, "{methods:?}");
    assert!(methods.iter().all(|m| messages.contains_key(&m.input)));
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 32,
        ..Config::default()
    };
    let answered = std::cell::RefCell::new(HashMap::<Code, u32>::new());
    let call = |path: &str, body: Vec<u8>| -> Result<(), TestCaseError> {
        let result = rt.block_on(raw_call(channel.clone(), path, KEY, Bytes::from(body)));
        *answered
            .borrow_mut()
            .entry(result.as_ref().err().map_or(Code::Ok, tonic::Status::code))
            .or_default() += 1;
        if let Err(status) = result {
            prop_assert!(
                !forbidden(status.code()),
                "{path}: {:?} {}",
                status.code(),
                status.message()
            );
        }
        Ok(())
    };
    let mut seen = HashMap::<Code, u32>::new();
    for method in &methods {
        let started = std::time::Instant::now();
        let mut runner = TestRunner::new(config.clone());
        runner
            .run(&prop::collection::vec(any::<u8>(), 0..512), |bytes| {
                call(&method.path, bytes)
            })
            .unwrap_or_else(|e| panic!("{}: arbitrary bytes: {e}", method.path));
        let mut runner = TestRunner::new(config.clone());
        runner
            .run(&typed(), |(numbers, strings)| {
                let mut src = Source {
                    numbers,
                    strings,
                    n: 0,
                    s: 0,
                };
                call(&method.path, message(&messages, &method.input, &mut src, 4))
            })
            .unwrap_or_else(|e| panic!("{}: arbitrary messages: {e}", method.path));
        eprintln!("{}: {:?}", method.path, started.elapsed());
        // Still serving: an empty ListRules is answered.
        let rules = rt.block_on(raw_call(
            channel.clone(),
            "/complianceguard.v1.ComplianceGuardService/ListRules",
            KEY,
            Bytes::new(),
        ));
        assert!(rules.is_ok(), "after {}: {rules:?}", method.path);
        // What a well-formed empty request gets, to see that the calls
        // reach the handlers (not all refused at the door).
        let empty = rt.block_on(raw_call(channel.clone(), &method.path, KEY, Bytes::new()));
        *seen
            .entry(empty.as_ref().err().map_or(Code::Ok, tonic::Status::code))
            .or_default() += 1;
    }
    // The arbitrary calls reached the handlers: some were carried out,
    // some refused field by field, some not found.
    let answered = answered.into_inner();
    eprintln!("answers to arbitrary calls: {answered:?}");
    for code in [Code::Ok, Code::InvalidArgument, Code::NotFound] {
        assert!(answered.get(&code).is_some_and(|n| *n > 0), "{answered:?}");
    }
    // Empty requests are refused for what they lack, not for the key.
    assert!(!seen.contains_key(&Code::Unauthenticated), "{seen:?}");
    assert!(seen.contains_key(&Code::Ok), "{seen:?}");
    assert!(seen.contains_key(&Code::InvalidArgument), "{seen:?}");
    rt.block_on(server.stop()).unwrap();
}
