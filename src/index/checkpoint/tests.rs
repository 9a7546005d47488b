//! The checkpoint read back is the index written, and nothing else is
//! read back at all.

use std::sync::Mutex;

use super::super::lean::tests::{canonical, names_and_tables};
use super::super::slots::{VACATED, ext_name, id_name};
use super::super::{IndexConfig, InteractionKey, LetGo};
use super::*;
use crate::model::{ContactInput, InteractionInput};
use crate::restrictions::RestrictionInput;
use chrono::{DateTime, Utc};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// The caller's encoding, as a test double: each record or
/// restriction kept aside, the file holding its place.
#[derive(Default)]
struct Aside {
    records: Mutex<Vec<Interaction>>,
    restrictions: Mutex<Vec<Restriction>>,
}

fn place(bytes: &[u8]) -> Result<usize, String> {
    let a: [u8; 8] = bytes.try_into().map_err(|_| "not a place".to_owned())?;
    Ok(u64::from_le_bytes(a) as usize)
}

fn write(index: &Index, aside: &Aside) -> Vec<u8> {
    let record = |r: &Interaction, out: &mut Vec<u8>| {
        let mut all = aside.records.lock().unwrap();
        out.extend_from_slice(&(all.len() as u64).to_le_bytes());
        all.push(r.clone());
    };
    let restriction = |r: &Restriction, out: &mut Vec<u8>| {
        let mut all = aside.restrictions.lock().unwrap();
        out.extend_from_slice(&(all.len() as u64).to_le_bytes());
        all.push(r.clone());
    };
    let mut bytes = Vec::new();
    let n = index
        .write_checkpoint(
            &mut bytes,
            &Codec {
                record: &record,
                restriction: &restriction,
            },
        )
        .unwrap();
    assert_eq!(n, bytes.len() as u64);
    bytes
}

fn read(config: IndexConfig, bytes: &[u8], aside: &Aside) -> Result<Index, CheckpointError> {
    let record = |b: &[u8]| {
        let i = place(b)?;
        aside
            .records
            .lock()
            .unwrap()
            .get(i)
            .cloned()
            .ok_or("no such record".to_owned())
    };
    let restriction = |b: &[u8]| {
        let i = place(b)?;
        aside
            .restrictions
            .lock()
            .unwrap()
            .get(i)
            .cloned()
            .ok_or("no such restriction".to_owned())
    };
    Index::read_checkpoint(
        config,
        bytes,
        bytes.len() as u64,
        &Decoder {
            record: &record,
            restriction: &restriction,
        },
    )
}

fn input(started: &str) -> InteractionInput {
    InteractionInput {
        channel: Some("voice".into()),
        direction: Some("outbound".into()),
        status: Some("succeeded".into()),
        started_at: Some(started.into()),
        ..InteractionInput::default()
    }
}

/// An index with a little of everything: people by our id, by an
/// external id and linked, chosen and generated ids, `externalId`s,
/// contact points, one loan, several and none, a declared account, a
/// restriction, a deleted interaction, records held whole, let go,
/// moved to disk (vacated) and brought back.
fn lived() -> Index {
    let now = at("2020-06-01T00:00:00Z");
    let mut index = Index::default();
    let person = "BO-0000-00000042";
    let mut made: Vec<String> = Vec::new();
    for (i, day) in (1..=28).enumerate() {
        let who = if i % 3 == 0 { "ext-crm-p" } else { person };
        let mut x = input(&format!("2020-05-{day:02}T14:00:00Z"));
        x.external_id = (i % 2 == 0).then(|| format!("crm-{i}"));
        x.loan_ids = match i % 4 {
            0 => None,
            1 => Some(vec!["L1".into()]),
            _ => Some(vec!["L1".into(), format!("L{i}")]),
        };
        if i % 5 == 0 {
            x.contact = Some(ContactInput {
                kind: Some("mobilePhone".into()),
                value: Some(format!("+1 206 555 01{i:02}")),
                name: None,
            });
        }
        if i == 7 {
            x.id = Some("IT-CHOSEN-7".into());
        }
        if i == 9 {
            x.is_external = Some(true);
        }
        if let Some(prev) = made.last() {
            x.previous_interaction_id = Some(prev.clone());
        }
        if i % 6 == 1 {
            x.direction = Some("inbound".into());
            x.channel = Some("text".into());
        }
        made.push(index.create(who, &x, now).unwrap().id.clone());
    }
    index.link_person(person, "crm-linked").unwrap();
    index
        .declare_debt(person, "ACC-1", &["L1".into(), "L3".into()])
        .unwrap();
    let r: RestrictionInput = serde_yaml::from_str(
        "kind: ceaseCommunication\nsource: letter\nreceivedAt: 2020-05-20T00:00:00Z\n",
    )
    .unwrap();
    let r = r
        .check("RS-0000-00000001".into(), person.into(), "t".into(), now)
        .unwrap();
    index.put_restriction(r).unwrap();
    index.delete(None, &made[9], now).unwrap();
    // The first week leaves memory, the second is let go, and one of
    // each comes back.
    let cutoff = at("2020-05-08T00:00:00Z").timestamp();
    let let_go = LetGo {
        before: at("2020-05-15T00:00:00Z").timestamp(),
    };
    index.move_to_disk(cutoff, u64::MAX, Some(let_go), |_| false);
    let back = index.plan_delete(None, &made[10], now);
    assert!(back.is_err(), "let go: {back:?}");
    index
        .load_from_disk(index_record(&made[10], "2020-05-11T14:00:00Z"), 11)
        .unwrap();
    index
}

/// A stored record as the store would give one back.
fn index_record(id: &str, started: &str) -> Interaction {
    let mut scratch = Index::default();
    let mut x = input(started);
    x.id = Some(id.into());
    x.loan_ids = Some(vec!["L1".into(), "L10".into()]);
    x.external_id = Some("crm-10".into());
    scratch
        .create("BO-0000-00000042", &x, at("2020-06-01T00:00:00Z"))
        .unwrap()
        .clone()
}

/// Written and read back, the index is the one written, to every
/// slot, table, list and counter (its emptied slots left out, and the
/// others named by their ids); and both go on the same way (the next id,
/// the next person).
#[test]
fn an_index_read_back_is_the_index_written() {
    let mut index = lived();
    assert!(index.vacated > 0 && index.let_go > 0 && !index.whole.is_empty());
    let aside = Aside::default();
    let bytes = write(&index, &aside);
    let mut back = read(index.config, &bytes, &aside).unwrap();
    // Its emptied slots are left out (the next test).
    assert_eq!(named(&back), named(&index));
    for i in [&mut index, &mut back] {
        go_on(i, "ext-crm-4");
    }
    assert_eq!(named(&back), named(&index));
}

/// What both sides of a comparison then do: a create citing `previous`,
/// naming two loans, for a person new to them; and the linked person
/// still has its restriction.
fn go_on(index: &mut Index, previous: &str) {
    let mut x = input("2020-05-30T10:00:00Z");
    x.previous_interaction_id = Some(previous.into());
    x.loan_ids = Some(vec!["L1".into(), "L6".into()]);
    index
        .create("ext-crm-new", &x, at("2020-06-01T00:00:00Z"))
        .unwrap();
    let view = index.view("ext-crm-linked").unwrap();
    assert_eq!(view.restrictions().len(), 1);
}

/// A file made for another horizon, or with any byte changed or
/// missing, is refused whole: never a panic, never a partial index.
#[test]
fn anything_but_the_bytes_written_is_refused() {
    let index = lived();
    let aside = Aside::default();
    let bytes = write(&index, &aside);
    let longer = IndexConfig { horizon_days: 120 };
    assert!(matches!(
        read(longer, &bytes, &aside),
        Err(CheckpointError::Unusable(_))
    ));
    for at in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
        let mut bad = bytes.clone();
        bad[at] ^= 0x5a;
        let got = read(index.config, &bad, &aside);
        assert!(got.is_err(), "byte {at} changed was read back");
        let cut = read(index.config, &bytes[..at], &aside);
        assert!(cut.is_err(), "cut at {at} was read back");
    }
}

/// Everything the index holds, as [`canonical`] writes it, but each
/// interaction named by its id rather than its key, and the slots emptied
/// by moves to disk left out, with what names them: a counting entry's
/// `previous` naming one is written as none, an audio file's entry not at
/// all (that these mean the same in memory is asked of the indexes
/// themselves, [`replies`] and `media_file`). Two indexes that hold the
/// same under other keys write the same.
fn named(index: &Index) -> String {
    use std::fmt::Write as _;
    let records = &index.records;
    let live = |k: InteractionKey| records.get(k.slot()).is_some_and(|s| !s.has(VACATED));
    let name = |k: InteractionKey| index.id_text(k);
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let mut out = String::new();
    for (i, slot) in records.iter().enumerate().filter(|(_, s)| !s.has(VACATED)) {
        let key = InteractionKey::of_slot(i);
        let id = name(key);
        let by_id = index.key_of_id(&id).map(name);
        let by_ext = ext_name(records, key)
            .and_then(|n| index.external_ids.get(n, |k| ext_name(records, k)))
            .map(name);
        writeln!(
            out,
            "{id} {:?} {} {:?} {} {} by id {by_id:?} by ext {by_ext:?} whole {:?} pending {:?}",
            slot.person,
            slot.flags,
            slot.ext,
            slot.seq,
            slot.at,
            index.whole.get(&key).map(|h| &h.record),
            index.pending.get(&key),
        )
        .unwrap();
    }
    for p in &index.people {
        let more = p.more();
        let entries: Vec<String> = p
            .entries
            .iter()
            .map(|e| {
                let mut bare = e.clone();
                bare.key = InteractionKey::default();
                bare.previous = None;
                let previous = e.previous.filter(|k| live(*k)).map(name);
                format!("{} {bare:?} previous {previous:?}", name(e.key))
            })
            .collect();
        let lists: Vec<String> = p.records.iter().map(|k| name(*k)).collect();
        writeln!(
            out,
            "{:?} {:?} {entries:?} {lists:?} {} {} {:?} {:?} {:?} {:?}",
            p.id,
            p.external_ids,
            p.interactions,
            p.records_on_disk,
            more.aliases,
            sorted(
                more.accounts_of_loans
                    .iter()
                    .map(|x| format!("{x:?}"))
                    .collect()
            ),
            sorted(more.accounts.iter().map(|x| format!("{x:?}")).collect()),
            more.restrictions
        )
        .unwrap();
    }
    let media = index
        .media_files
        .iter()
        .filter(|(_, k)| live(**k))
        .map(|(f, k)| format!("{f} {}", name(*k)))
        .collect();
    writeln!(out, "{:?}", sorted(media)).unwrap();
    writeln!(out, "{:?}", index.registry.dump(&index.people)).unwrap();
    let restrictions = index
        .restriction_ids
        .iter()
        .map(|x| format!("{x:?}"))
        .collect();
    writeln!(out, "{:?}", sorted(restrictions)).unwrap();
    out.push_str(&names_and_tables(index));
    let numbers = index
        .loan_set_numbers
        .table
        .iter()
        .map(|n| format!("{n}"))
        .collect();
    writeln!(out, "{:?}", sorted(numbers)).unwrap();
    let given = index
        .given_ids
        .iter()
        .map(|(k, t)| format!("{} {t}", name(*k)))
        .collect();
    writeln!(out, "{:?}", sorted(given)).unwrap();
    writeln!(
        out,
        "{:?} {} {} {} {} {} {} {} {} {} {} live slots {} len {}",
        index.config,
        index.next_person,
        index.next_interaction,
        index.next_restriction,
        index.on_disk,
        index.let_go,
        index.epoch,
        index.held_from,
        index.max_on_disk_generated,
        index.next_seq,
        index.frame,
        records.len() - index.vacated,
        index.len(),
    )
    .unwrap();
    out
}

/// For each person's counting entries, the interaction and whether it
/// answers the borrower; then, for each of `ids`, whether a send citing
/// it at `at` would be the reply to the borrower: what a decision reads
/// of the links between interactions, by id.
fn replies(index: &Index, people: &[&str], ids: &[String], at: DateTime<Utc>) -> Vec<String> {
    let mut out = Vec::new();
    for person in people {
        let view = index.view(person).unwrap();
        for e in view.entries() {
            out.push(format!(
                "{} {}",
                index.id_text(e.key),
                view.answers_borrower(e)
            ));
        }
        for id in ids {
            out.push(format!("{person} {id} {}", index.is_reply(person, id, at)));
        }
    }
    out
}

/// How many counting entries cite an emptied slot as their previous
/// interaction.
fn entries_citing_emptied(index: &Index) -> usize {
    index
        .people
        .iter()
        .flat_map(|p| &p.entries)
        .filter_map(|e| e.previous)
        .filter(|k| index.records[k.slot()].has(VACATED))
        .count()
}

/// An index written with slots emptied by moves to disk reads back
/// without them, its other slots numbered again in order; what named an
/// emptied slot names nothing. It holds the same interactions, names,
/// entries and records (compared by their ids, [`named`]), answers the
/// same, and goes on the same way. A most of whose slots are emptied is
/// written too (an earlier release refused to, and the next start
/// rebuilt from the store to reclaim them).
#[test]
fn emptied_slots_are_left_out_and_the_others_numbered_again() {
    let now = at("2020-06-01T00:00:00Z");
    let mut index = lived();
    // Audio on two interactions held whole: the one on the 17th leaves
    // memory with the second move below (and its file's entry with it),
    // the one on the 25th stays, its entry under its new key.
    for (day, file) in [("17", "k-17"), ("25", "k-25")] {
        let started = at(&format!("2020-05-{day}T14:00:00Z"));
        let mut with_audio = index
            .interactions()
            .find(|r| r.started_at == started)
            .unwrap()
            .clone();
        with_audio.recording = Some(Box::new(crate::model::Media {
            content_type: "audio/wav".into(),
            size_bytes: 3,
            sha256: "00".into(),
            uploaded_at: now,
            uploaded_by: "t".into(),
            storage_key: file.into(),
        }));
        index.restore_interaction(with_audio).unwrap();
    }
    // Interactions recorded late with earlier times, so that the slots
    // emptied below lie between kept ones, not only before them: an
    // inbound message on the 19th answered on the 21st (a reply, until
    // the message leaves memory), and others either side of each cutoff.
    let person = "BO-0000-00000042";
    let mut late: Vec<String> = Vec::new();
    for (started, inbound, cites) in [
        ("2020-05-06T10:00:00Z", false, None),
        ("2020-05-26T10:00:00Z", false, None),
        ("2020-05-19T09:00:00Z", true, None),
        ("2020-05-21T09:00:00Z", false, Some(2)),
        ("2020-05-12T10:00:00Z", false, None),
        ("2020-05-28T10:00:00Z", false, Some(4)),
        ("2020-05-07T10:00:00Z", false, None),
        ("2020-05-29T10:00:00Z", false, None),
    ] {
        let mut x = input(started);
        x.channel = Some("text".into());
        if inbound {
            x.direction = Some("inbound".into());
        }
        x.previous_interaction_id = cites.map(|i: usize| late[i].clone());
        late.push(index.create(person, &x, now).unwrap().id.clone());
    }
    let people = ["BO-0000-00000042", "ext-crm-p", "ext-crm-linked"];
    let aside = Aside::default();
    for (cutoff, mostly) in [
        ("2020-05-08T00:00:00Z", false),
        ("2020-05-20T00:00:00Z", true),
    ] {
        index.move_to_disk(at(cutoff).timestamp(), u64::MAX, None, |_| false);
        // Emptied slots between kept ones.
        let flags: Vec<bool> = index.records.iter().map(|s| s.has(VACATED)).collect();
        assert!(
            flags.windows(3).any(|w| !w[0] && w[1] && !w[2]),
            "{flags:?}"
        );
        assert!(index.vacated > 0);
        assert_eq!(index.vacated * 4 > index.records.len(), mostly);
        assert!(
            entries_citing_emptied(&index) > 0,
            "no entry names an emptied slot"
        );
        let mut back = read(index.config, &write(&index, &aside), &aside).unwrap();
        assert_eq!(back.vacated, 0);
        assert_eq!(back.records.len(), index.records.len() - index.vacated);
        assert_eq!(back.len(), index.len());
        assert_eq!(named(&back), named(&index));
        // What a decision reads of the links between interactions, asked
        // of both.
        let when = at("2020-05-22T00:00:00Z");
        let asked = replies(&index, &people, &late, when);
        assert_eq!(replies(&back, &people, &late, when), asked);
        // The answer on the 21st is a reply until the message leaves.
        assert_eq!(asked.contains(&format!("{} true", late[3])), !mostly);
        for file in ["k-17", "k-25"] {
            assert_eq!(back.media_file(file), index.media_file(file));
        }
        assert_eq!(index.media_file("k-17").is_some(), !mostly);
        assert_eq!(index.media_file("k-25"), Some(None));
        // Nothing emptied: written and read back, it is itself.
        let again = read(back.config, &write(&back, &aside), &aside).unwrap();
        assert_eq!(canonical(&again), canonical(&back));
        let mut twin = read(index.config, &write(&index, &aside), &aside).unwrap();
        for i in [&mut twin, &mut back] {
            go_on(i, "ext-crm-26");
        }
        assert_eq!(named(&back), named(&twin));
    }
    // Memory out of step with itself (an entry naming an emptied slot,
    // which memory would still count) is refused, not written without it.
    let emptied = index.records.iter().position(|s| s.has(VACATED)).unwrap();
    let mut stray = index.people[0].entries[0].clone();
    stray.key = InteractionKey::of_slot(emptied);
    index.people[0].entries.push(stray);
    let record = |_: &Interaction, _: &mut Vec<u8>| {};
    let restriction = |_: &Restriction, _: &mut Vec<u8>| {};
    let codec = Codec {
        record: &record,
        restriction: &restriction,
    };
    let refused = index.write_checkpoint(Vec::new(), &codec);
    assert!(
        matches!(&refused, Err(CheckpointError::Unusable(m)) if m.contains("emptied")),
        "{refused:?}"
    );
}

/// More full records than one chunk of the reading holds (each chunk is
/// decoded half on a second thread): read back whole, each in its slot.
/// A record that does not decode is refused, named by where its bytes
/// end; of two, the earlier in the file.
#[test]
fn records_held_whole_read_back_across_chunks_and_threads() {
    let now = at("2020-06-01T00:00:00Z");
    let mut index = Index::default();
    let n = 2 * WHOLE_CHUNK + 5;
    for i in 0..n {
        let started = format!(
            "2020-05-{:02}T{:02}:{:02}:00Z",
            1 + i % 28,
            i / 60 % 24,
            i % 60
        );
        let person = format!("BO-0000-{:08}", i % 300 + 1);
        index.create(&person, &input(&started), now).unwrap();
    }
    assert_eq!(index.whole.len(), n);
    let aside = Aside::default();
    let bytes = write(&index, &aside);
    let back = read(index.config, &bytes, &aside).unwrap();
    assert_eq!(canonical(&back), canonical(&index));

    let refusing = |refused: &[usize]| {
        let record = |b: &[u8]| {
            let i = place(b)?;
            if refused.contains(&i) {
                return Err(format!("refused {i}"));
            }
            Ok(aside.records.lock().unwrap()[i].clone())
        };
        let restriction = |b: &[u8]| {
            let i = place(b)?;
            Ok(aside.restrictions.lock().unwrap()[i].clone())
        };
        let decoder = Decoder {
            record: &record,
            restriction: &restriction,
        };
        match Index::read_checkpoint(index.config, bytes.as_slice(), bytes.len() as u64, &decoder) {
            Err(CheckpointError::Damaged { at, what }) => (at, what),
            other => panic!("{refused:?}: {:?}", other.map(|_| "read")),
        }
    };
    // Places are given in the order written: 100 in the first chunk's
    // first half, the other in the second chunk's second half.
    let late = WHOLE_CHUNK + WHOLE_CHUNK / 2 + 3;
    let (at_late, what) = refusing(&[late]);
    assert_eq!(what, format!("refused {late}"));
    let (at_early, what) = refusing(&[late, 100]);
    assert_eq!(what, "refused 100");
    assert!(0 < at_early && at_early < at_late && at_late < bytes.len() as u64);
}

/// Interactions leave the horizon about in the order they were created,
/// so whole chunks of slots are emptied at once: such a chunk is given
/// back, while one interaction that stays (it happens later than those
/// created around it) keeps its chunk. What stays is found by both its
/// names, answers as it did (messages citing ones in the chunk given
/// back), and the index is written, read back and goes on as one whose
/// emptied slots were all kept. A walk in parts that end inside chunks,
/// as the server's, empties and gives back the same.
#[test]
fn a_chunk_of_emptied_slots_is_given_back_and_the_rest_kept() {
    use super::super::chunks::CHUNK;
    let now = at("2020-06-01T00:00:00Z");
    let minute = |m: usize| {
        let t = at("2020-04-01T00:00:00Z") + chrono::Duration::minutes(m as i64);
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    };
    let n = 2 * CHUNK + 100;
    let person = |i: usize| format!("BO-0000-{:08}", i % 256 + 1);
    let mut ids: Vec<String> = Vec::new();
    let mut built = || {
        let mut index = Index::default();
        ids.clear();
        for i in 0..n {
            // Slot 5 happens after all the others.
            let mut x = input(&minute(if i == 5 { n + 10 } else { i }));
            x.external_id = i.is_multiple_of(3).then(|| format!("crm-{i}"));
            // Inbound messages in the chunk given back, and answers after
            // it citing them (the same person's, a chunk apart).
            if i.is_multiple_of(10) && i >= CHUNK {
                x.channel = Some("text".into());
                if i < 2 * CHUNK {
                    x.direction = Some("inbound".into());
                } else {
                    x.previous_interaction_id = Some(ids[i - CHUNK].clone());
                }
            }
            ids.push(index.create(&person(i), &x, now).unwrap().id.clone());
        }
        (index, ids.clone())
    };
    let (mut index, ids) = built();
    let (mut parts, _) = built();
    let found = |index: &Index, i: usize| {
        let by_ext = format!("ext-crm-{i}");
        let ext = i
            .is_multiple_of(3)
            .then(|| index.find_interaction(&by_ext).unwrap().is_some());
        (index.knows(&ids[i]), ext)
    };
    let people: Vec<String> = (0..256).map(person).collect();
    let people: Vec<&str> = people.iter().map(String::as_str).collect();
    let when = at(&minute(n + 30));
    let cutoff = at(&minute(2 * CHUNK)).timestamp();
    index.move_to_disk(cutoff, u64::MAX, None, |_| false);
    assert_eq!(index.chunks_given_back(), 1);
    assert_eq!(index.vacated, 2 * CHUNK - 1);
    for i in 0..n {
        let kept = i == 5 || i >= 2 * CHUNK;
        assert_eq!(
            found(&index, i),
            (kept, i.is_multiple_of(3).then_some(kept)),
            "{i}"
        );
    }
    // The same walk in parts of 3,000 (the second gives the chunk back),
    // twice.
    let keep_whole = LetGo { before: i64::MIN };
    for _ in 0..2 {
        for start in (0..n).step_by(3000) {
            let part = start..(start + 3000).min(n);
            parts.let_go_in(part, cutoff, u64::MAX, keep_whole, |_| false, |_| {});
        }
    }
    assert_eq!(parts.chunks_given_back(), 1);
    // (Each part that moved some counts as a move of its own.)
    assert_eq!(parts.epoch, 3);
    parts.epoch = index.epoch;
    assert_eq!(named(&parts), named(&index));
    // A part inside the chunk given back walks nothing, not even past its
    // end, whatever the cutoff.
    let far = at(&minute(n + 100)).timestamp();
    let inside = CHUNK + 10..2 * CHUNK - 10;
    assert_eq!(
        parts.let_go_in(inside, far, u64::MAX, keep_whole, |_| false, |_| {}),
        0
    );
    assert_eq!(
        parts.let_go_in(0..CHUNK, far, u64::MAX, keep_whole, |_| false, |_| {}),
        1
    );
    // The first chunk's emptied slots are kept with it; the second's read
    // as emptied.
    let emptied: Vec<bool> = index.records.iter().map(|s| s.has(VACATED)).collect();
    assert_eq!(emptied.len(), n);
    assert!((0..n).all(|i| emptied[i] == (i != 5 && i < 2 * CHUNK)));
    let aside = Aside::default();
    let mut back = read(index.config, &write(&index, &aside), &aside).unwrap();
    assert_eq!(back.records.len(), 101);
    assert_eq!(back.len(), index.len());
    assert_eq!(named(&back), named(&index));
    let asked = replies(&index, &people, &ids[2 * CHUNK..], when);
    assert_eq!(asked.len(), 101 + 256 * 100);
    assert_eq!(replies(&back, &people, &ids[2 * CHUNK..], when), asked);
    for i in [&mut index, &mut back] {
        let mut x = input(&minute(n + 11));
        x.previous_interaction_id = Some(ids[5].clone());
        x.external_id = Some("crm-after".into());
        i.create(&person(5), &x, now).unwrap();
    }
    assert_eq!(named(&back), named(&index));
    // Everything leaves: the first chunk goes too; the last, not whole,
    // stays.
    index.move_to_disk(at(&minute(n + 20)).timestamp(), u64::MAX, None, |_| false);
    assert_eq!(index.chunks_given_back(), 2);
    assert!((0..n).all(|i| !found(&index, i).0));
    assert_eq!(index.records.len(), n + 1);
    assert!(index.records.iter().all(|s| s.has(VACATED)));
    assert!(index.records.get_mut(2 * CHUNK).is_some() && index.records.get_mut(n).is_some());
    assert!(index.records.get_mut(0).is_none() && index.records.get_mut(2 * CHUNK - 1).is_none());
}

/// The keys a table is filed from come in key order, each once.
#[test]
fn keys_are_filed_in_their_order_each_once() {
    let key = |n: usize| InteractionKey::of_slot(n);
    let keys = [130, 5, 64, 0, 63, 5, 129].map(key).to_vec();
    assert_eq!(
        in_key_order(keys, 131),
        [0, 5, 63, 64, 129, 130].map(key).to_vec()
    );
    assert_eq!(in_key_order(Vec::new(), 0), Vec::new());
}

/// The last chunk given back (every slot of a whole last chunk emptied):
/// what is created next takes a chunk of its own, is found by its names,
/// and is written and read back.
#[test]
fn a_create_after_the_last_chunk_was_given_back_takes_a_chunk_of_its_own() {
    use super::super::chunks::CHUNK;
    let now = at("2020-06-01T00:00:00Z");
    let mut index = Index::default();
    for i in 0..CHUNK {
        let person = format!("BO-0000-{:08}", i % 50 + 1);
        index
            .create(&person, &input("2020-01-02T10:00:00Z"), now)
            .unwrap();
    }
    index.move_to_disk(
        at("2020-02-01T00:00:00Z").timestamp(),
        u64::MAX,
        None,
        |_| false,
    );
    assert_eq!(index.chunks_given_back(), 1);
    let mut x = input("2020-05-30T10:00:00Z");
    x.external_id = Some("crm-next".into());
    let id = index
        .create("BO-0000-00000001", &x, now)
        .unwrap()
        .id
        .clone();
    assert!(index.knows(&id) && index.holds(&id));
    assert_eq!(
        index.find_interaction("ext-crm-next").unwrap(),
        index.key_of_id(&id)
    );
    assert_eq!(index.records.len(), CHUNK + 1);
    assert_eq!(index.records[CHUNK].seq, CHUNK as u64);
    let aside = Aside::default();
    let back = read(index.config, &write(&index, &aside), &aside).unwrap();
    assert_eq!(back.records.len(), 1);
    assert_eq!(named(&back), named(&index));
}

/// A table that holds a key twice (memory out of step with itself) is
/// written as it is, and refused when read back: the next start rebuilds.
#[test]
fn a_table_key_written_twice_is_refused() {
    let now = at("2020-06-01T00:00:00Z");
    let mut index = Index::default();
    let id = index
        .create("BO-0000-00000001", &input("2020-05-30T10:00:00Z"), now)
        .unwrap()
        .id
        .clone();
    let k = index.key_of_id(&id).unwrap();
    let (records, given) = (&index.records, &index.given_ids);
    let name = id_name(records, given, k).unwrap();
    index.ids.insert(name, k, |k| id_name(records, given, k));
    assert_eq!(index.ids.len(), 2);
    let aside = Aside::default();
    let refused = read(index.config, &write(&index, &aside), &aside);
    assert!(
        matches!(&refused, Err(CheckpointError::Damaged { what, .. }) if what.contains("ids table")),
        "{:?}",
        refused.map(|_| "read")
    );
}
