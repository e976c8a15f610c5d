// The interop checks must be able to fail: each kind of difference between a
// source's stream and a relay's is reported. Run by tests/interop/run
// (`node --test`) before the network starts.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { checkSeqOrder, compareRelayed, unconfirmedHandles } from './compare.mjs'
import { relayExpected } from './expect.mjs'

const commit = (seq, did, rev, extra = {}) => ({
  seq,
  type: 'commit',
  did,
  rev,
  since: null,
  commit: `c-${rev}`,
  prevData: null,
  tooBig: false,
  ops: [`create app.bsky.feed.post/${rev} r-${rev}`],
  blocks: `b-${rev}`,
  ...extra,
})
const sync = (seq, did, rev) => ({ seq, type: 'sync', did, rev, blocks: `s-${rev}` })
const account = (seq, did, active) => ({ seq, type: 'account', did, active, status: active ? null : 'deactivated' })

const source = [account(1, 'A', true), commit(2, 'A', '2a'), commit(3, 'B', '3b'), commit(4, 'A', '4a')]
// The relay renumbers and interleaves repos differently.
const relayed = [commit(10, 'B', '3b'), account(11, 'A', true), commit(12, 'A', '2a'), commit(13, 'A', '4a')]

test('the same events per repo, renumbered and interleaved, pass', () => {
  assert.deepEqual(compareRelayed(source, relayed), [])
  assert.deepEqual(checkSeqOrder(relayed), [])
})

test('a missing event is reported with its repo', () => {
  const p = compareRelayed(source, relayed.filter((e) => e.seq !== 13))
  assert.equal(p.length, 1)
  assert.match(p[0], /^A event 3 of 3: .* missing at the relay$/)
})

test('an extra event is reported', () => {
  const p = compareRelayed(source, [...relayed, commit(14, 'B', '5b')])
  assert.equal(p.length, 1)
  assert.match(p[0], /^B event 2 of 1: none at the source/)
})

test('a changed field is reported', () => {
  const changed = relayed.map((e) => (e.seq === 12 ? { ...e, blocks: 'other' } : e))
  assert.equal(compareRelayed(source, changed).length, 1)
})

test('per-repo order matters', () => {
  const swapped = [relayed[0], relayed[1], relayed[3], relayed[2]]
  assert.equal(compareRelayed(source, swapped).length, 1)
})

test('seqs must increase', () => {
  assert.equal(checkSeqOrder([relayed[1], relayed[0]]).length, 1)
})

test('only #commit and #sync not above the last rev are expected ignored', () => {
  const stream = [commit(1, 'A', '2a'), sync(2, 'A', '2a'), sync(3, 'A', '1a'), sync(4, 'A', '3a'), commit(5, 'A', '3a'), account(6, 'A', true)]
  const { expected, ignored } = relayExpected(stream)
  assert.deepEqual(ignored.map((e) => e.seq), [2, 3, 5])
  assert.deepEqual(expected.map((e) => e.seq), [1, 4, 6])
})

test('a handle is dropped only where the DID document no longer claims it', () => {
  const renamed = { seq: 1, type: 'identity', did: 'A', handle: 'old.test' }
  const current = { seq: 2, type: 'identity', did: 'A', handle: 'new.test' }
  const stripped = (e, seq) => ({ ...e, seq, handle: null })
  // Nothing marked: a dropped handle is a difference.
  assert.equal(compareRelayed([renamed], [stripped(renamed, 10)]).length, 1)
  unconfirmedHandles.add(renamed)
  assert.deepEqual(compareRelayed([renamed, current], [stripped(renamed, 10), { ...current, seq: 11 }]), [])
  assert.deepEqual(compareRelayed([renamed, current], [{ ...renamed, seq: 10 }, { ...current, seq: 11 }]), [])
  // The current handle must come through, and no other handle may.
  assert.equal(compareRelayed([renamed, current], [stripped(renamed, 10), stripped(current, 11)]).length, 1)
  assert.equal(compareRelayed([renamed], [{ ...renamed, seq: 10, handle: 'evil.test' }]).length, 1)
})

