import type { StatusReport } from '../status-report.js'
import type { ScrubReport, ScrubPass } from '../replication/scrubber.js'

export function renderStatus (r: StatusReport, progress: boolean): string {
  const rep = r.replication
  const v = r.volume
  const lines = [
    r.health.headline,
    '',
    `volume      ${v.volumeId}`,
    `this node   ${r.node.id.slice(0, 16)} (${r.node.role === 'full' ? 'full member' : 'storage-only'}) ${r.daemon.running ? `daemon running (pid ${r.daemon.pid})` : 'no daemon running: peers unknown, shown from the data dir alone'}`,
    `data dir    ${r.dataDir}`
  ]
  if (r.node.trustsRoleClaims) lines.push('            WARNING: joined with a code older than version 3, so a peer claiming the full role is believed; run `disktro join --upgrade <code>` with a new storage-only code')
  if ('files' in v) {
    lines.push(
      `files       ${v.files} in ${v.directories} directories, ${bytes(v.logicalBytes)}`,
      `stored      ${bytes(v.storedBytes)} in ${v.chunks} chunks (compression ${v.compressionRatio.toFixed(2)}x, dedupe ${v.dedupeRatio.toFixed(2)}x)`)
  }
  lines.push(`store       ${r.store.chunks} chunks, ${bytes(r.store.bytes)} held here${r.cache ? ` (cache limit ${bytes(r.cache.cacheSize)}; ${r.cache.evictedChunks} chunks evicted, fetched back on demand)` : ''}`)
  if (r.space) lines.push(`space       ${bytes(r.space.storeBytes)} of store pages${r.space.perLogicalByte !== null ? `, ${r.space.perLogicalByte.toFixed(2)} bytes per byte of file data` : ''}; chunk records ${bytes(r.space.chunkBytes)}, ${r.space.packs} packs of small records`)
  const what = r.node.role === 'storage' ? 'held here' : 'referenced'
  lines.push('', `replication ${rep.atTarget}/${rep.chunks} chunks ${what} at target, ${rep.underReplicated} under, ${rep.onlyHere} only here, ${rep.lost} lost; ${bytes(rep.pendingBytes)} pending, uploading ${bytes(rep.uploadRate)}/s`)
  if (!r.daemon.running && rep.savedAt) lines.push(`            (counted by the daemon ${Math.round((Date.now() - rep.savedAt) / 1000)} s ago)`)
  if (rep.unsettled) lines.push(`            ${rep.unsettled} chunk(s) changed and not recounted yet`)
  if (rep.chunks > 0 && rep.unproven !== undefined) lines.push(`            ${rep.chunks - rep.unproven} of ${rep.chunks} chunks have every copy elsewhere proven by a challenge; ${rep.unproven} have a copy reported only (about chunks not held here, so nothing to challenge with: checked by HAS)`)
  if (r.audit) {
    for (const a of r.audit.peers) {
      const all = a.checkedAllSince === null ? 'a first pass over its holdings running' : `every holding checked in the last ${Math.round((Date.now() - a.checkedAllSince) / 1000)} s`
      lines.push(`  proofs    ${a.id.slice(0, 16)}: ${a.checked} holdings checked (${a.proven} by challenge), ${a.failed} failed and removed; ${all}${a.lastRound ? `; last round ${Math.round((Date.now() - a.lastRound) / 1000)} s ago` : ''}`)
    }
    if (r.audit.claims) lines.push(`  claims    ${r.audit.claims.pending} copies peers say they hold wait for a proof (not counted until then); ${r.audit.claims.proven} proven, ${r.audit.claims.refuted} refuted this run`)
    if (r.audit.expired) lines.push(`  ${r.audit.expired} copies stopped counting: their holders were offline longer than repairAfter (${Math.round((r.repairAfter ?? 0) / 1000)} s)`)
  }
  if (r.storage) {
    const st = r.storage
    const days = (ms: number): string => ms >= 86_400_000 ? `${Math.round(ms / 86_400_000)} d` : `${Math.round(ms / 1000)} s`
    lines.push(`  for others ${st.members.length === 0 ? 'nothing held for other members' : `held for ${st.members.length} member(s), quota ${bytes(st.quotaPerMember)} each`}; leases ${days(st.leases.leaseMs)} of full-member presence (clock ${days(st.leases.clockMs)}), ${st.leases.expiredChunks} expired and collected`)
    for (const m of st.members) lines.push(`    ${m.member.slice(0, 16)} ${m.chunks} chunks, ${bytes(m.bytes)} (${(100 * m.bytes / st.quotaPerMember).toFixed(1)}% of its quota)`)
  }
  if (rep.etaSec !== null && rep.etaSec !== undefined) lines.push(`            ${rep.queued} chunk(s) queued; safe in about ${rep.etaSec < 120 ? `${rep.etaSec} s` : `${Math.round(rep.etaSec / 60)} min`} at the current rate`)
  if (progress && rep.chunks > 0 && rep.underReplicated > 0) {
    const width = 40
    const done = Math.round(width * rep.atTarget / rep.chunks)
    lines.push(`[${'#'.repeat(done)}${'.'.repeat(width - done)}] ${(100 * rep.atTarget / rep.chunks).toFixed(1)}%`)
  }
  lines.push('', r.peers.length ? 'peers' : 'peers       none seen yet')
  for (const p of r.peers) {
    const seen = p.lastSeen ? `${Math.max(0, Math.round((Date.now() - p.lastSeen) / 1000))}s ago` : 'never'
    lines.push(`  ${p.id.slice(0, 16)} ${p.online ? 'online ' : 'OFFLINE'} ${p.role.padEnd(7)} ${p.address.padEnd(21)} seen ${seen.padEnd(8)} rtt ${p.rttMs === null ? '-' : p.rttMs.toFixed(1) + 'ms'}  holds ${p.chunks ?? '?'} chunks ${p.bytes === null ? '' : bytes(p.bytes)}${p.refusing ? `  REFUSING: ${p.refusing}` : ''}`)
  }
  if (r.namespace) {
    const n = r.namespace
    lines.push('', `namespace   ${n.records} changes in the log${n.folded ? ` (${n.folded} more folded into a snapshot)` : ''} from ${n.members} member(s), ${n.conflicts} conflict cop${n.conflicts === 1 ? 'y' : 'ies'} in the tree`)
    if (n.compactionError) lines.push(`  COMPACTION FAILED: ${n.compactionError}`)
    for (const p of n.peers) lines.push(`  ${p.id.slice(0, 16)} ${p.behind === 0 ? 'in sync' : `behind by ${p.behind} change(s)`}`)
    if (n.quarantined) lines.push(`  QUARANTINED ${n.quarantined} change(s) signed by non-members or revoked members (refused, kept aside)`)
  }
  if (r.members?.length) {
    lines.push('', 'members')
    for (const m of r.members) {
      const seen = m.self ? 'this node' : m.lastSeen ? `seen ${Math.max(0, Math.round((Date.now() - m.lastSeen) / 1000))}s ago` : 'not seen this run'
      lines.push(`  ${m.id.slice(0, 16)} ${(m.role ?? '?').padEnd(7)} ${m.state === 'revoked' ? 'REVOKED' : 'active '} ${m.online && !m.self ? 'online ' : ''}${seen}  (by ${m.issuer.slice(0, 8)})`)
    }
  }
  if (r.gc) {
    lines.push(`garbage     ${r.gc.pending} unreferenced chunk(s) waiting (grace ${Math.round(r.gc.graceMs / 1000)} s); ${r.gc.collectedChunks} collected, ${bytes(r.gc.collectedBytes)} freed here`)
  }
  if (r.eventLoop) {
    const e = r.eventLoop
    lines.push(`event loop  longest stall ${e.longestStallMs} ms, ${e.stallsOver50ms} over 50 ms in ${e.sinceSec} s (busy: ${e.busy.longestStallMs} ms, ${e.busy.stallsOver50ms}); last minute: ${e.lastMinute.longestStallMs} ms, ${e.lastMinute.stallsOver50ms} over 50 ms`)
  }
  if (r.scrub) lines.push('', ...scrubLines(r.scrub))
  if (r.pins?.length) {
    lines.push('', 'pins (the peer always holds a full copy)')
    for (const p of r.pins) {
      const state = p.held >= p.chunks ? 'complete' : `${p.held}/${p.chunks} chunks held`
      lines.push(`  ${p.path ?? `(inode ${p.ino}, no longer named)`}  -> ${p.peer.slice(0, 16)} ${p.peerOnline ? 'online ' : 'offline'}  ${state}`)
    }
  }
  return lines.join('\n') + '\n'
}

function scrubLines (s: ScrubReport): string[] {
  const found = (p: ScrubPass): string => {
    const bad = p.corrupt + p.missing
    if (bad === 0) return 'all good'
    return `${p.corrupt} corrupt, ${p.missing} missing: ${p.repaired} repaired from peers${p.unrepairable ? `, ${p.unrepairable} WITHOUT A GOOD COPY yet` : ''}`
  }
  const ago = (t: number): string => `${Math.max(0, Math.round((Date.now() - t) / 1000))}s ago`
  const out = [`scrub       ${s.rateBytesPerSec > 0 ? `at most ${bytes(s.rateBytesPerSec)}/s, ${s.passes} pass(es) done` : 'off (scrubRate 0)'}`]
  if (s.last) {
    const secs = ((s.last.finished ?? s.last.started) - s.last.started) / 1000
    out.push(`  last pass finished ${ago(s.last.finished ?? s.last.started)}: ${s.last.checked} chunks, ${bytes(s.last.bytes)} in ${secs.toFixed(1)} s; ${found(s.last)}`)
  } else {
    out.push('  no pass finished yet')
  }
  if (s.current) out.push(`  ${s.running ? 'running' : 'interrupted'} since ${ago(s.current.started)}: ${s.current.checked} chunks, ${bytes(s.current.bytes)} so far; ${found(s.current)}`)
  return out
}

export function bytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++ }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`
}
