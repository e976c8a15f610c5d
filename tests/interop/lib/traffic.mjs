// Realistic account activity written through the reference client
// (@atproto/api): the kinds of writes a relay sees from a real PDS. Each
// function returns what it did, so scenarios can state exact counts.
import { AtpAgent } from '@atproto/api'

export const PASSWORD = 'interop password 1'

/** Creates `names` as accounts `<name>.test` on `service`, logged in. */
export async function createAccounts(service, names) {
  const accounts = []
  for (const name of names) {
    const agent = new AtpAgent({ service })
    const handle = `${name}.test`
    await agent.createAccount({ handle, email: `${name}@example.test`, password: PASSWORD })
    accounts.push({ name, handle, did: agent.session.did, agent, service, writes: 0 })
  }
  return accounts
}

/**
 * One round of activity across `accounts` (which may span PDSes): posts,
 * a profile update, follows and likes between accounts, a deleted post, a
 * repost. Counts each account's record writes in `writes`.
 */
export async function socialRound(accounts, round) {
  const posts = []
  for (const a of accounts) {
    for (let i = 0; i < 2; i++) {
      const p = await a.agent.post({ text: `round ${round} post ${i} from ${a.name}` })
      posts.push({ ...p, by: a })
      a.writes += 1
    }
    await a.agent.upsertProfile((old) => ({
      ...(old ?? {}),
      displayName: `${a.name} (round ${round})`,
      description: `interop account on ${a.service}`,
    }))
    a.writes += 1
  }
  for (const a of accounts) {
    for (const b of accounts) {
      if (a === b) continue
      if (round === 0) {
        await a.agent.follow(b.did)
        a.writes += 1
      }
      const theirs = posts.find((p) => p.by === b)
      await a.agent.like(theirs.uri, theirs.cid)
      a.writes += 1
    }
  }
  const first = accounts[0]
  const doomed = posts.find((p) => p.by === first)
  await first.agent.deletePost(doomed.uri)
  first.writes += 1
  if (accounts.length > 1) {
    const other = posts.find((p) => p.by === accounts[1])
    await first.agent.repost(other.uri, other.cid)
    first.writes += 1
  }
}

/** Identity and account-status changes: a handle change, a deactivate/activate. */
export async function lifecycle(account, newName) {
  const handle = `${newName}.test`
  await account.agent.updateHandle({ handle })
  account.handle = handle
  await account.agent.com.atproto.server.deactivateAccount({})
  await account.agent.com.atproto.server.activateAccount()
  // A write after reactivation: the relay must take the repo's events again.
  await account.agent.post({ text: `${newName} is back` })
  account.writes += 1
}

/**
 * One applyWrites of `n` creates (posts), then one that updates half of
 * them and deletes the rest: multi-op commits, whose MST proofs a relay
 * must invert as a whole.
 */
export async function batchWrites(account, n) {
  const now = new Date().toISOString()
  const created = await account.agent.com.atproto.repo.applyWrites({
    repo: account.did,
    writes: Array.from({ length: n }, (_, i) => ({
      $type: 'com.atproto.repo.applyWrites#create',
      collection: 'app.bsky.feed.post',
      value: { $type: 'app.bsky.feed.post', text: `batch post ${i}`, createdAt: now },
    })),
  })
  const rkeys = created.data.results.map((r) => r.uri.split('/').pop())
  await account.agent.com.atproto.repo.applyWrites({
    repo: account.did,
    writes: rkeys.map((rkey, i) =>
      i % 2 === 0
        ? {
            $type: 'com.atproto.repo.applyWrites#update',
            collection: 'app.bsky.feed.post',
            rkey,
            value: { $type: 'app.bsky.feed.post', text: `batch post ${i}, edited`, createdAt: now },
          }
        : { $type: 'com.atproto.repo.applyWrites#delete', collection: 'app.bsky.feed.post', rkey },
    ),
  })
  account.writes += 2 * n
}
