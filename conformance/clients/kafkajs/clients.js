#!/usr/bin/env node
/*
 * Chronik against kafkajs 2.2.4 (Node.js): admin, producers, consumer groups.
 *
 * Usage: node clients.js HOST:PORT   (a broker started with
 * --group-initial-rebalance-delay-ms 0, so groups form at once)
 *
 * Checks, in order, each printing one PASS line:
 *   admin topics      createTopics (3 partitions, and again: "already exists"),
 *                     listTopics, fetchTopicMetadata, deleteTopics
 *   acks              producer.send with acks -1 and 1, uncompressed and gzip:
 *                     each base offset follows on from the last
 *   round trip        uncompressed and gzip: keys (some null), values (some
 *                     null), headers (one repeated), timestamps, offsets
 *   idempotent        idempotent: true, maxInFlightRequests 1: every record
 *                     acknowledged in order and read back exactly once
 *   group of two      two consumers of one group share a 4-partition topic;
 *                     once both hold partitions, every record reaches its
 *                     partition's owner exactly once; describeGroups while
 *                     Stable; autoCommit leaves fetchOffsets == end offsets
 *   groups            listGroups / describeGroups once the members left
 *   offsets           fetchTopicOffsets (latest, earliest) and
 *                     fetchTopicOffsetsByTimestamp (before, between, after)
 *   seek              consumer.seek at start and mid-stream, commitOffsets
 *
 * Exits 1 at the first failure with a FAIL line naming it, followed on stderr
 * by the last kafkajs log lines (DEBUG level, kept in memory). Every wait polls
 * for a condition with a deadline; nothing sleeps to synchronise.
 * CHRONIK_KAFKAJS_LOG=debug (or info, warn, error) also streams kafkajs's log
 * to stderr as it happens.
 * Needs: npm ci in this directory (`cargo xtask ci` runs it).
 */

'use strict'

const {
  Kafka,
  logLevel,
  CompressionTypes,
  Partitioners,
  AssignerProtocol,
} = require('kafkajs')
const crypto = require('crypto')

/** How long any one condition may take to come true. */
const DEADLINE_MS = 30000
/** The whole script's budget; a hang past it is a failure, not a stuck test. */
const SCRIPT_DEADLINE_MS = 180000
const GROUP_PARTITIONS = 4
const GROUP_RECORDS = 400

// ----- logging: kafkajs's own log, kept for the failure report ---------------

const LOG_KEEP = 400
const logTail = []
const streamLevel = {
  debug: logLevel.DEBUG,
  info: logLevel.INFO,
  warn: logLevel.WARN,
  error: logLevel.ERROR,
}[(process.env.CHRONIK_KAFKAJS_LOG || '').toLowerCase()]
const LEVEL_NAME = {
  [logLevel.ERROR]: 'ERROR',
  [logLevel.WARN]: 'WARN',
  [logLevel.INFO]: 'INFO',
  [logLevel.DEBUG]: 'DEBUG',
}

const logCreator = () => ({ namespace, level, log }) => {
  const { message, timestamp, logger: _logger, ...extra } = log
  let line = `${timestamp} ${LEVEL_NAME[level]} [${namespace}] ${message} ${JSON.stringify(extra)}`
  if (line.length > 1500) line = line.slice(0, 1500) + '…'
  logTail.push(line)
  if (logTail.length > LOG_KEEP) logTail.shift()
  if (streamLevel !== undefined && level <= streamLevel) process.stderr.write(line + '\n')
}

function fail(what, err) {
  const why = err instanceof Error ? `${err.name}: ${err.message}` : String(err)
  console.log(`FAIL kafkajs ${what}: ${why}`)
  if (err instanceof Error && err.stack) console.error(err.stack)
  console.error(`----- last ${logTail.length} kafkajs log lines -----`)
  console.error(logTail.join('\n'))
  console.error('----- end of kafkajs log -----')
  process.exit(1)
}

// ----- helpers ---------------------------------------------------------------

function unique(prefix) {
  return `${prefix}-${crypto.randomBytes(4).toString('hex')}`
}

function expect(cond, msg) {
  if (!cond) throw new Error(msg)
}

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b)
}

/** Polls `fn` (sync or async) every 50 ms until it returns something truthy. */
async function waitFor(what, fn, timeoutMs = DEADLINE_MS) {
  const deadline = Date.now() + timeoutMs
  let last
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline) {
      const why = last ? ` (last error: ${last.message})` : ''
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`)
    }
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** `{ partition: offset }` of `fetchTopicOffsets`' latest offsets, as numbers. */
async function endOffsets(admin, topic) {
  const out = {}
  for (const p of await admin.fetchTopicOffsets(topic)) out[p.partition] = Number(p.high)
  return out
}

async function createTopic(admin, topic, numPartitions) {
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions, replicationFactor: 1 }],
    waitForLeaders: true,
    timeout: DEADLINE_MS,
  })
  expect(created === true, `createTopics ${topic}: returned ${created}, not true`)
}

/** A consumer of its own group that keeps every message it is handed. */
async function collector(kafka, topic, opts = {}) {
  const consumer = kafka.consumer({
    groupId: opts.groupId || unique('kjs-collect'),
    heartbeatInterval: 500,
    sessionTimeout: 10000,
    maxWaitTimeInMs: 200,
  })
  const got = []
  let crashed = null
  consumer.on(consumer.events.CRASH, e => {
    crashed = e.payload.error
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  const running = consumer.run({
    autoCommit: opts.autoCommit !== false,
    eachMessage: async ({ partition, message }) => {
      got.push({ partition, ...message, offset: Number(message.offset) })
    },
  })
  if (opts.awaitRun !== false) await running
  return {
    consumer,
    got,
    crashed: () => crashed,
    async waitCount(n, what) {
      await waitFor(`${what}: ${n} records consumed (have ${got.length})`, () => {
        if (crashed) throw new Error(`consumer crashed: ${crashed.message}`)
        return got.length >= n
      })
    },
  }
}

// ----- checks ----------------------------------------------------------------

async function checkAdminTopics(kafka, admin) {
  const topic = unique('kjs-admin')
  await createTopic(admin, topic, 3)
  const again = await admin.createTopics({
    topics: [{ topic, numPartitions: 3, replicationFactor: 1 }],
    timeout: DEADLINE_MS,
  })
  expect(again === false, `createTopics of an existing topic returned ${again}, not false`)

  const topics = await admin.listTopics()
  expect(topics.includes(topic), `listTopics has no ${topic}: ${JSON.stringify(topics)}`)

  const cluster = await admin.describeCluster()
  const brokerIds = cluster.brokers.map(b => b.nodeId)
  expect(brokerIds.length >= 1, `describeCluster lists no broker: ${JSON.stringify(cluster)}`)
  expect(
    brokerIds.includes(cluster.controller),
    `describeCluster controller ${cluster.controller} is not a listed broker ${brokerIds}`
  )
  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  expect(md.topics.length === 1 && md.topics[0].name === topic, `fetchTopicMetadata: ${JSON.stringify(md)}`)
  const parts = md.topics[0].partitions.slice().sort((a, b) => a.partitionId - b.partitionId)
  expect(
    same(parts.map(p => p.partitionId), [0, 1, 2]),
    `fetchTopicMetadata ${topic}: partitions ${JSON.stringify(parts)}`
  )
  for (const p of parts) {
    expect(
      p.partitionErrorCode === 0 && brokerIds.includes(p.leader) && p.replicas.includes(p.leader) && p.isr.includes(p.leader),
      `fetchTopicMetadata ${topic}: partition ${JSON.stringify(p)} has no live leader among ${brokerIds}`
    )
  }

  await admin.deleteTopics({ topics: [topic], timeout: DEADLINE_MS })
  await waitFor(`${topic} gone from listTopics`, async () => !(await admin.listTopics()).includes(topic))
  return `${topic}: 3 partitions led by broker ${parts[0].leader}, deleted`
}

async function checkAcks(kafka, admin) {
  const topic = unique('kjs-acks')
  await createTopic(admin, topic, 1)
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  try {
    let next = 0
    for (const acks of [-1, 1]) {
      for (const [codec, compression] of [['none', CompressionTypes.None], ['gzip', CompressionTypes.GZIP]]) {
        const messages = Array.from({ length: 100 }, (_, i) => ({ partition: 0, value: `acks=${acks} ${codec} ${i}` }))
        const r = await producer.send({ topic, acks, compression, messages })
        expect(
          r.length === 1 && r[0].errorCode === 0 && r[0].baseOffset === String(next),
          `acks ${acks} ${codec}: ${JSON.stringify(r)}, want base offset ${next}`
        )
        next += messages.length
      }
    }
  } finally {
    await producer.disconnect()
  }
  const ends = await endOffsets(admin, topic)
  expect(same(ends, { 0: 400 }), `end offsets after 400 records: ${JSON.stringify(ends)}`)
  return `${topic}: acks -1 and 1, uncompressed and gzip, base offsets 0, 100, 200, 300`
}

/** Records with every field kafkajs can set; `t0` is their first timestamp. */
function roundTripRecords(tag, n, t0) {
  return Array.from({ length: n }, (_, i) => {
    const m = {
      partition: 0,
      key: i % 10 === 3 ? null : `${tag}-key-${i}`,
      value: i % 17 === 5 ? null : `${tag} value ${i} lorem ipsum; `.repeat(1 + (i % 13)),
      timestamp: String(t0 + i),
    }
    if (i % 4 !== 0) m.headers = { index: String(i), tag, twice: ['first', 'second'] }
    return m
  })
}

/** What the consumer should hand back for `roundTripRecords`, in one form. */
function asSent(records) {
  return records.map((m, offset) => ({
    offset,
    key: m.key,
    value: m.value,
    timestamp: m.timestamp,
    headers: m.headers || {},
  }))
}

function asReceived(got) {
  const text = b => (b === null || b === undefined ? null : b.toString())
  return got.map(m => {
    const headers = {}
    for (const [k, v] of Object.entries(m.headers || {})) headers[k] = Array.isArray(v) ? v.map(text) : text(v)
    return { offset: m.offset, key: text(m.key), value: text(m.value), timestamp: m.timestamp, headers }
  })
}

async function checkRoundTrip(kafka, admin, name, compression) {
  const topic = unique(`kjs-${name}`)
  const n = 500
  await createTopic(admin, topic, 1)
  const records = roundTripRecords(topic, n, Date.now() - 60000)
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  try {
    for (let i = 0; i < n; i += 250) {
      const [r] = await producer.send({ topic, acks: -1, compression, messages: records.slice(i, i + 250) })
      expect(r.errorCode === 0 && r.baseOffset === String(i), `send of records ${i}..: ${JSON.stringify(r)}`)
    }
  } finally {
    await producer.disconnect()
  }
  const c = await collector(kafka, topic)
  try {
    await c.waitCount(n, topic)
  } finally {
    await c.consumer.disconnect()
  }
  const want = asSent(records)
  const got = asReceived(c.got)
  expect(got.length === n, `${topic}: consumed ${got.length} records, produced ${n}`)
  for (let i = 0; i < n; i++) {
    expect(same(got[i], want[i]), `${topic}: record ${i} differs:\n  sent ${JSON.stringify(want[i])}\n  got  ${JSON.stringify(got[i])}`)
  }
  return `${topic}: ${n} records with keys, headers, timestamps`
}

async function checkIdempotent(kafka, admin) {
  const topic = unique('kjs-idem')
  const n = 500
  const per = 50
  await createTopic(admin, topic, 1)
  // The client's retries stay finite (see main) so a broker error fails the check
  // instead of retrying forever; kafkajs logs a warning that this weakens EoS.
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  })
  await producer.connect()
  try {
    for (let i = 0; i < n; i += per) {
      const messages = Array.from({ length: per }, (_, j) => ({ partition: 0, value: `${topic}-${i + j}` }))
      const [r] = await producer.send({ topic, acks: -1, messages })
      expect(r.errorCode === 0 && r.baseOffset === String(i), `idempotent send of records ${i}..: ${JSON.stringify(r)}`)
    }
  } finally {
    await producer.disconnect()
  }
  const ends = await endOffsets(admin, topic)
  expect(same(ends, { 0: n }), `end offsets after ${n} idempotent records: ${JSON.stringify(ends)}`)
  const c = await collector(kafka, topic)
  try {
    await c.waitCount(n, topic)
  } finally {
    await c.consumer.disconnect()
  }
  const got = c.got.map(m => [m.offset, m.value.toString()])
  const want = Array.from({ length: n }, (_, i) => [i, `${topic}-${i}`])
  expect(same(got, want), `${topic}: records read back are not each produced record once, in order`)
  return `${topic}: ${n} records in ${n / per} sends, each once`
}

/** The group check's results, for the listGroups / describeGroups check. */
const GROUPS = {}

async function checkGroupOfTwo(kafka, admin) {
  const topic = unique('kjs-group')
  const groupId = unique('kjs-group')
  await createTopic(admin, topic, GROUP_PARTITIONS)

  const assigned = {} // member name -> partitions of its latest join
  const got = [] // { member, partition, offset, value }
  const crashes = []
  const members = []
  for (const name of ['kjs-a', 'kjs-b']) {
    const consumer = kafka.consumer({
      groupId,
      heartbeatInterval: 500,
      sessionTimeout: 10000,
      rebalanceTimeout: 20000,
      maxWaitTimeInMs: 200,
    })
    assigned[name] = []
    consumer.on(consumer.events.GROUP_JOIN, e => {
      assigned[name] = (e.payload.memberAssignment[topic] || []).slice().sort()
    })
    consumer.on(consumer.events.CRASH, e => crashes.push(`${name}: ${e.payload.error.message}`))
    members.push({ name, consumer })
  }
  const balanced = () => {
    const sets = Object.values(assigned)
    const every = sets.flat().sort()
    return sets.every(s => s.length > 0) && same(every, [...Array(GROUP_PARTITIONS).keys()])
  }

  try {
    await Promise.all(
      members.map(async ({ name, consumer }) => {
        await consumer.connect()
        await consumer.subscribe({ topics: [topic], fromBeginning: true })
        await consumer.run({
          autoCommit: true,
          eachMessage: async ({ partition, message }) => {
            got.push({ member: name, partition, offset: Number(message.offset), value: message.value.toString() })
          },
        })
      })
    )
    await waitFor(`two members sharing ${GROUP_PARTITIONS} partitions (${JSON.stringify(assigned)})`, () => {
      if (crashes.length) throw new Error(`member crashed: ${crashes}`)
      return balanced()
    })
    const owner = {}
    for (const [name, parts] of Object.entries(assigned)) for (const p of parts) owner[p] = name

    const described = (await admin.describeGroups([groupId])).groups[0]
    expect(
      described.state === 'Stable' && described.protocolType === 'consumer' && described.members.length === 2,
      `describeGroups ${groupId} while consuming: ${JSON.stringify({ ...described, members: described.members.length })}`
    )
    const describedAssignment = {}
    for (const m of described.members) {
      const a = AssignerProtocol.MemberAssignment.decode(m.memberAssignment)
      for (const p of (a && a.assignment[topic]) || []) describedAssignment[p] = m.memberId
    }
    expect(
      same(Object.keys(describedAssignment).map(Number).sort(), [...Array(GROUP_PARTITIONS).keys()]),
      `describeGroups ${groupId}: member assignments ${JSON.stringify(describedAssignment)} do not cover the topic`
    )

    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
    await producer.connect()
    try {
      const messages = Array.from({ length: GROUP_RECORDS }, (_, i) => ({
        partition: i % GROUP_PARTITIONS,
        value: `${topic}-${i}`,
      }))
      await producer.send({ topic, acks: -1, messages })
    } finally {
      await producer.disconnect()
    }
    await waitFor(`${GROUP_RECORDS} records consumed by the group (have ${got.length})`, () => {
      if (crashes.length) throw new Error(`member crashed: ${crashes}`)
      return got.length >= GROUP_RECORDS
    })
    const ends = await endOffsets(admin, topic)
    const committed = async () => {
      const [t] = await admin.fetchOffsets({ groupId, topics: [topic] })
      const out = {}
      for (const p of t.partitions) out[p.partition] = Number(p.offset)
      return out
    }
    await waitFor(`fetchOffsets ${groupId} == end offsets ${JSON.stringify(ends)}`, async () =>
      same(await committed(), ends)
    )

    const still = {}
    for (const [name, parts] of Object.entries(assigned)) for (const p of parts) still[p] = name
    expect(same(still, owner), `the group rebalanced while records flowed: ${JSON.stringify(owner)} -> ${JSON.stringify(still)}`)
    const values = got.map(m => m.value).sort()
    const want = Array.from({ length: GROUP_RECORDS }, (_, i) => `${topic}-${i}`).sort()
    expect(same(values, want), `${topic}: ${got.length} records consumed, not each of ${GROUP_RECORDS} once`)
    for (const m of got) {
      expect(owner[m.partition] === m.member, `${m.member} got ${topic}/${m.partition}@${m.offset}, owned by ${owner[m.partition]}`)
    }
    GROUPS[groupId] = { topic, committed: ends }
    const split = Object.entries(assigned).map(([n, p]) => `${n} ${p}`).join(', ')
    return `${groupId}: ${split}; ${GROUP_RECORDS} records each once, committed == end offsets`
  } finally {
    await Promise.all(members.map(({ consumer }) => consumer.disconnect()))
  }
}

async function checkGroups(kafka, admin) {
  const ids = Object.keys(GROUPS)
  expect(ids.length === 1, `the group check left no group: ${JSON.stringify(ids)}`)
  const groupId = ids[0]
  const listed = await waitFor(`listGroups listing ${groupId}`, async () =>
    (await admin.listGroups()).groups.find(g => g.groupId === groupId)
  )
  expect(listed.protocolType === 'consumer', `listGroups ${groupId}: ${JSON.stringify(listed)}`)
  // The members sent LeaveGroup on disconnect; the group empties without waiting for a session timeout.
  const d = await waitFor(`describeGroups ${groupId} Empty`, async () => {
    const g = (await admin.describeGroups([groupId])).groups[0]
    return g.state === 'Empty' ? g : null
  })
  expect(
    d.errorCode === 0 && d.protocolType === 'consumer' && d.members.length === 0,
    `describeGroups ${groupId}: ${JSON.stringify(d)}`
  )
  const unknown = (await admin.describeGroups([unique('kjs-never')])).groups[0]
  expect(
    unknown.state === 'Dead' && unknown.members.length === 0,
    `describeGroups of a group that never existed: ${JSON.stringify(unknown)}`
  )
  const [t] = await admin.fetchOffsets({ groupId, topics: [GROUPS[groupId].topic] })
  const offsets = {}
  for (const p of t.partitions) offsets[p.partition] = Number(p.offset)
  expect(same(offsets, GROUPS[groupId].committed), `fetchOffsets ${groupId} after the members left: ${JSON.stringify(offsets)}`)
  return `${groupId}: listed, Empty with no members, offsets kept`
}

async function checkTopicOffsets(kafka, admin) {
  const topic = unique('kjs-offsets')
  const n = 10
  await createTopic(admin, topic, 2)
  const t0 = Date.now() - 600000
  const empty = await admin.fetchTopicOffsets(topic)
  for (const p of empty) {
    expect(p.offset === '0' && p.high === '0' && p.low === '0', `fetchTopicOffsets of a new topic: ${JSON.stringify(empty)}`)
  }
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  try {
    // One record per send, so every record has its own batch and batch max timestamp.
    for (let i = 0; i < n; i++) {
      await producer.send({ topic, acks: -1, messages: [{ partition: 0, value: `r${i}`, timestamp: String(t0 + i * 1000) }] })
    }
  } finally {
    await producer.disconnect()
  }
  const offsets = (await admin.fetchTopicOffsets(topic)).sort((a, b) => a.partition - b.partition)
  const want = [
    { partition: 0, offset: String(n), high: String(n), low: '0' },
    { partition: 1, offset: '0', high: '0', low: '0' },
  ]
  expect(same(offsets, want), `fetchTopicOffsets: ${JSON.stringify(offsets)}, want ${JSON.stringify(want)}`)

  // The first offset whose timestamp is >= the one asked; none (-1) reads as the end offset.
  const at = async ts =>
    (await admin.fetchTopicOffsetsByTimestamp(topic, ts)).sort((a, b) => a.partition - b.partition).map(p => p.offset)
  for (const [ts, wantAt] of [
    [t0 - 1000, ['0', '0']],
    [t0, ['0', '0']],
    [t0 + 3500, ['4', '0']],
    [t0 + 9000, ['9', '0']],
    [t0 + 9001, [String(n), '0']],
    [Date.now() + 3600000, [String(n), '0']],
  ]) {
    const got = await at(ts)
    expect(same(got, wantAt), `fetchTopicOffsetsByTimestamp(t0 ${ts >= t0 ? '+' : '-'} ${Math.abs(ts - t0)} ms): ${JSON.stringify(got)}, want ${JSON.stringify(wantAt)}`)
  }
  return `${topic}: latest ${n}/0, earliest 0/0, by timestamp before/at/between/after`
}

async function checkSeek(kafka, admin) {
  const topic = unique('kjs-seek')
  const groupId = unique('kjs-seek')
  const n = 20
  await createTopic(admin, topic, 1)
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  try {
    await producer.send({ topic, acks: -1, messages: Array.from({ length: n }, (_, i) => ({ partition: 0, value: `s${i}` })) })
  } finally {
    await producer.disconnect()
  }
  // kafkajs's documented pattern: seek right after run, before the first fetch.
  const c = await collector(kafka, topic, { groupId, autoCommit: false, awaitRun: false })
  const offsetsFrom = i => c.got.slice(i).map(m => m.offset)
  const range = (from, to) => Array.from({ length: to - from }, (_, i) => from + i)
  try {
    c.consumer.seek({ topic, partition: 0, offset: '5' })
    await c.waitCount(n - 5, `${topic} from offset 5`)
    expect(same(offsetsFrom(0), range(5, n)), `after seek to 5 at start: offsets ${offsetsFrom(0)}`)

    const mark = c.got.length
    c.consumer.seek({ topic, partition: 0, offset: '2' })
    await c.waitCount(mark + n - 2, `${topic} again from offset 2`)
    expect(same(offsetsFrom(mark), range(2, n)), `after seek to 2 mid-stream: offsets ${offsetsFrom(mark)}`)

    await c.consumer.commitOffsets([{ topic, partition: 0, offset: String(n) }])
    const [t] = await admin.fetchOffsets({ groupId, topics: [topic] })
    expect(
      same(t.partitions.map(p => [p.partition, p.offset]), [[0, String(n)]]),
      `fetchOffsets after commitOffsets(${n}): ${JSON.stringify(t.partitions)}`
    )
  } finally {
    await c.consumer.disconnect()
  }
  return `${topic}: seek to 5 at start, to 2 mid-stream, committed ${n}`
}

// ----- main ------------------------------------------------------------------

async function main() {
  const boot = process.argv[2]
  if (!boot || process.argv.length !== 3) {
    console.error('usage: node clients.js HOST:PORT')
    process.exit(2)
  }
  const started = Date.now()
  const version = require('kafkajs/package.json').version
  console.log(`kafkajs ${version} on Node.js ${process.version}, broker ${boot}`)
  setTimeout(() => fail('script', new Error(`still running after ${SCRIPT_DEADLINE_MS} ms`)), SCRIPT_DEADLINE_MS).unref()

  const kafka = new Kafka({
    clientId: 'chronik-kafkajs-compat',
    brokers: [boot],
    logLevel: logLevel.DEBUG,
    logCreator,
    connectionTimeout: 5000,
    requestTimeout: DEADLINE_MS,
    retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 2000 },
  })
  const admin = kafka.admin()
  try {
    await admin.connect()
  } catch (e) {
    fail('admin connect', e)
  }

  const checks = [
    ['admin topics: createTopics, listTopics, fetchTopicMetadata, deleteTopics', checkAdminTopics],
    ['producer acks -1 and 1, uncompressed and gzip', checkAcks],
    ['round trip uncompressed', (k, a) => checkRoundTrip(k, a, 'plain', CompressionTypes.None)],
    ['round trip gzip', (k, a) => checkRoundTrip(k, a, 'gzip', CompressionTypes.GZIP)],
    ['idempotent producer (maxInFlightRequests 1)', checkIdempotent],
    ['consumer group of two, autoCommit, fetchOffsets', checkGroupOfTwo],
    ['admin listGroups, describeGroups', checkGroups],
    ['fetchTopicOffsets, fetchTopicOffsetsByTimestamp', checkTopicOffsets],
    ['consumer seek, commitOffsets', checkSeek],
  ]
  for (const [name, fn] of checks) {
    const start = Date.now()
    let detail
    try {
      detail = await fn(kafka, admin)
    } catch (e) {
      fail(name, e)
    }
    console.log(`PASS kafkajs ${name} (${((Date.now() - start) / 1000).toFixed(1)}s): ${detail}`)
  }
  await admin.disconnect()
  console.log(`kafkajs: all ${checks.length} checks passed in ${((Date.now() - started) / 1000).toFixed(1)}s`)
}

process.on('unhandledRejection', e => fail('unhandled rejection', e))
main().catch(e => fail('script', e))
