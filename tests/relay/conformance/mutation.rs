//! Named mutations of a validly signed commit: each spoils one thing the
//! verifier checks, built on a fork of the account so the account itself
//! stays where the relay has it.

use atrelay::crypto::PrivateKey;
use atrelay::repo::builder::BuiltCommit;
use atrelay::repo::commit::Commit as SignedCommit;
use atrelay::wire::car::{Car, CarLimits, CarWriter};
use atrelay::wire::cid::Cid;
use atrelay::wire::frame::Event;
use atrelay::wire::tid::Tid;

use super::table::Mutation;
use crate::harness::{TestAccount, TIME};

/// A new post on a fork of `account` (a foreign key's fork for
/// [`Mutation::ForeignKey`], at a future rev for [`Mutation::RevInFuture`]).
pub fn build_mutated(account: &TestAccount, m: Mutation) -> BuiltCommit {
    match m {
        Mutation::ForeignKey => account.impostor().post("forged"),
        Mutation::RevInFuture => {
            let day = 86_400_000_000;
            let rev = Tid::from_parts(atrelay::clock::now_micros() + day, 0);
            account.fork().post_at("from tomorrow", rev)
        }
        Mutation::OversizeRecord => account.fork().post(&"x".repeat(1_000_001)),
        _ => account.fork().post("mutated"),
    }
}

/// The `#commit` frame at upstream `seq` for `built`, spoiled by `m` (`key`
/// signs what is re-signed).
pub fn mutate(built: &BuiltCommit, m: Mutation, key: &PrivateKey, seq: u64) -> Vec<u8> {
    let strings = built.frame_strings();
    let mut ev = built.to_frame(&strings, seq as i64, TIME);
    let oversize;
    let rev_ahead;
    let car;
    let resigned;
    match m {
        Mutation::ForeignKey | Mutation::RevInFuture | Mutation::OversizeRecord => {}
        Mutation::NoPrevData => ev.prev_data = None,
        Mutation::OversizeBlocks => {
            oversize = vec![0u8; 2_000_001];
            ev.blocks = &oversize;
        }
        Mutation::BlocksNotCar => ev.blocks = b"this is not a CAR file",
        Mutation::CommitRevNotTid => {
            resigned = resign_with_bad_rev(built, key);
            ev.commit = resigned.0;
            ev.blocks = &resigned.1;
        }
        Mutation::FrameRevAhead => {
            rev_ahead = Tid::from_u64(built.rev.as_u64() + (1 << 10))
                .unwrap()
                .to_string();
            ev.rev = &rev_ahead;
        }
        Mutation::TooBigFlag => ev.too_big = true,
        Mutation::CreateWithPrev => ev.ops[0].prev = Some(built.data),
        Mutation::RecordBlockMissing => {
            let record = ev.ops[0].cid.expect("a create has a cid");
            car = car_without(&built.car, record);
            ev.blocks = &car;
        }
        Mutation::MstRootMissing => {
            car = car_without(&built.car, built.data);
            ev.blocks = &car;
        }
        Mutation::PrevDataWrong => ev.prev_data = Some(built.data),
    }
    let mut frame = Vec::new();
    Event::Commit(ev).encode(&mut frame);
    frame
}

/// `car` without the block `cid`.
fn car_without(car: &[u8], cid: Cid) -> Vec<u8> {
    let car = Car::parse(car, CarLimits::FIREHOSE).unwrap();
    let mut out = CarWriter::new(car.roots());
    for b in car.blocks().iter().filter(|b| b.cid != cid) {
        out.push(&b.cid, b.data);
    }
    out.finish()
}

/// The commit re-signed by `key` over the same tree with a `rev` that is not
/// a TID, and the diff CAR rooted at it.
fn resign_with_bad_rev(built: &BuiltCommit, key: &PrivateKey) -> (Cid, Vec<u8>) {
    let signed = SignedCommit::sign(&built.head.did, "not-a-tid", built.data, None, key);
    let car = Car::parse(&built.car, CarLimits::FIREHOSE).unwrap();
    let mut out = CarWriter::new(&[signed.cid]);
    out.push(&signed.cid, &signed.bytes);
    for b in car.blocks().iter().filter(|b| b.cid != built.commit) {
        out.push(&b.cid, b.data);
    }
    (signed.cid, out.finish())
}
