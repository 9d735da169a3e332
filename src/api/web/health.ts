// "Is my data safe?" in the words both `disktro status` and the dashboard's
// headline use, from evidence only: "safe" when every tracked chunk has
// copies at target, "replicating" only while something can copy, and
// "unknown" when nothing was counted (no daemon and no saved count, or a
// first count still running). (A pure module under web/ so the browser can
// load it too.)

export interface HealthInput {
  daemonRunning: boolean
  role: 'full' | 'storage'
  replication: {
    target: number
    chunks: number
    atTarget: number
    underReplicated: number
    lost: number
    onlyHere: number
    uploadRate: number
    queued: number
    unsettled?: number
    counting?: boolean
    savedAt?: number | null // when the counts on disk were last written (no daemon)
  }
  peers: Array<{ id: string, online: boolean, lastSeen: number | null }>
  repairAfterMs?: number
  now?: number
  machines?: number // members known (this one, peers seen, holders of copies); default: this one and the peers seen
}

export interface Health {
  state: 'safe' | 'at-risk' | 'unknown'
  exitCode: 0 | 1 | 2 // `disktro status`: 0 safe, 1 at risk, 2 unknown
  headline: string
}

export function health (i: HealthInput): Health {
  const r = i.replication
  const now = i.now ?? Date.now()
  const online = i.peers.filter(p => p.online).length
  const machines = Math.max(i.machines ?? 0, i.peers.length + 1)
  const tracked = i.role === 'storage' ? 'held' : 'referenced'
  if (!i.daemonRunning) {
    if (r.counting === true || r.savedAt === null || r.savedAt === undefined) return { state: 'unknown', exitCode: 2, headline: 'unknown: no daemon running and no count of copies saved (start `disktro mount` or `disktro serve`)' }
    const what = r.lost > 0 ? `${r.lost} chunks lost` : r.underReplicated > 0 ? `${r.underReplicated} of ${r.chunks} chunks below ${r.target} copies` : `every chunk on ${r.target} machines`
    return { state: 'unknown', exitCode: 2, headline: `unknown: no daemon running; last known ${ago(now - r.savedAt)} ago: ${what}` }
  }
  if (r.counting === true) return { state: 'unknown', exitCode: 2, headline: `unknown: counting the copies of every ${tracked} chunk (${r.chunks} so far)` }
  if (r.chunks === 0) return { state: 'safe', exitCode: 0, headline: i.role === 'storage' ? 'holding no chunks for the volume yet' : 'empty volume: nothing to replicate yet' }
  if (r.lost > 0) return { state: 'at-risk', exitCode: 1, headline: `NOT SAFE: ${r.lost} of ${r.chunks} chunks lost (no copy known anywhere)` }
  if (r.underReplicated > 0) {
    const below = `${r.underReplicated} of ${r.chunks} chunks below ${r.target} copies`
    if (machines < r.target) return { state: 'at-risk', exitCode: 1, headline: `at risk: ${below}: this volume has ${machines} machine${machines === 1 ? '' : 's'} known and replicaCount is ${r.target}: add ${r.target - machines} with \`disktro invite\`` }
    if (r.uploadRate > 0 || r.queued > 0) return { state: 'at-risk', exitCode: 1, headline: `replicating: ${below}` }
    const offline = i.peers.filter(p => !p.online)
    if (online === 0) return { state: 'at-risk', exitCode: 1, headline: `waiting for peers: ${below}, no peer online${offline.length ? ` (${offline.length} offline)` : ''}` }
    if (online + 1 < r.target) return { state: 'at-risk', exitCode: 1, headline: `waiting for peers: ${below}; ${online + 1} of ${machines} machines online, ${r.target} needed` }
    return { state: 'at-risk', exitCode: 1, headline: `at risk: ${below} (repair pending)` }
  }
  // Chunks changed in the last moments (not counted yet) are said, not
  // judged: the verdict is that of everything counted.
  const recounting = (r.unsettled ?? 0) > 0 ? ` (${r.unsettled} chunk(s) just changed, being counted)` : ''
  const away = i.peers.filter(p => !p.online && p.lastSeen !== null && now - (p.lastSeen ?? 0) < (i.repairAfterMs ?? 0))
  if (away.length > 0 && i.repairAfterMs !== undefined) {
    const first = Math.min(...away.map(p => p.lastSeen ?? now))
    return { state: 'safe', exitCode: 0, headline: `safe: every chunk on ${r.target} machines (${away.length} peer(s) offline since ${ago(now - first)} ago; their copies count for ${ago(Math.max(0, first + i.repairAfterMs - now))} more, repairAfter)${recounting}` }
  }
  return { state: 'safe', exitCode: 0, headline: `safe: every chunk on ${r.target} machines${recounting}` }
}

function ago (ms: number): string {
  const s = Math.round(ms / 1000)
  if (s < 120) return `${s} s`
  if (s < 7200) return `${Math.round(s / 60)} min`
  return `${Math.round(s / 3600)} h`
}
