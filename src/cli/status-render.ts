import type { StatusReport } from '../status-report.js'
import type { ScrubReport, ScrubPass } from '../replication/scrubber.js'
import { whyBehind } from '../api/web/health.js'

function behind (r: StatusReport): string {
  return whyBehind(r.daemon.running, r.peers.some(p => p.online))
}

export function renderStatus (r: StatusReport, progress: boolean): string {
  const rep = r.replication
  const v = r.volume
  const safe = rep.lost > 0 ? `NOT SAFE: ${rep.lost} chunks lost` : rep.underReplicated > 0 ? `${behind(r)}: ${rep.underReplicated} of ${rep.chunks} chunks below ${rep.target} copies` : `safe: every chunk on ${rep.target} machines`
  const lines = [
    `${safe}`,
    '',
    `volume      ${v.volumeId}`,
    `this node   ${r.node.id.slice(0, 16)} (${r.node.role === 'full' ? 'full member' : 'storage-only'}) ${r.daemon.running ? `daemon running (pid ${r.daemon.pid})` : 'no daemon running: peers unknown, shown from the data dir alone'}`,
    `data dir    ${r.dataDir}`
  ]
  if ('files' in v) {
    lines.push(
      `files       ${v.files} in ${v.directories} directories, ${bytes(v.logicalBytes)}`,
      `stored      ${bytes(v.storedBytes)} in ${v.chunks} chunks (compression ${v.compressionRatio.toFixed(2)}x, dedupe ${v.dedupeRatio.toFixed(2)}x)`)
  }
  lines.push(`store       ${r.store.chunks} chunks, ${bytes(r.store.bytes)} held here${r.cache ? ` (cache limit ${bytes(r.cache.cacheSize)}; ${r.cache.evictedChunks} chunks evicted, fetched back on demand)` : ''}`)
  lines.push('', `replication ${rep.atTarget}/${rep.chunks} at target, ${rep.underReplicated} under, ${rep.onlyHere} only here, ${rep.lost} lost; ${bytes(rep.pendingBytes)} pending, uploading ${bytes(rep.uploadRate)}/s`)
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
  }
  if (r.gc) {
    lines.push(`garbage     ${r.gc.pending} unreferenced chunk(s) waiting (grace ${Math.round(r.gc.graceMs / 1000)} s); ${r.gc.collectedChunks} collected, ${bytes(r.gc.collectedBytes)} freed here`)
  }
  if (r.scrub) lines.push('', ...scrubLines(r.scrub))
  if (r.pins?.length) {
    lines.push('', 'pins (the peer always holds a full copy)')
    for (const p of r.pins) {
      const state = p.held >= p.chunks ? 'complete' : `${p.held}/${p.chunks} chunks held`
      lines.push(`  ${p.path ?? `(inode ${p.ino}, no longer named)`}  -> ${p.peer.slice(0, 16)} ${p.peerOnline ? 'online ' : 'offline'}  ${state}`)
    }
  }
  if (r.files) {
    lines.push('', 'files')
    for (const f of r.files) lines.push(`  ${f.path}  ${bytes(f.size)}  ${f.atTarget}/${f.chunks} at target${f.lost ? `, ${f.lost} LOST` : ''}`)
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
