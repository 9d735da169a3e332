// Summarises V8 .cpuprofile files (from `node --cpu-prof`): top functions by
// self time. `node dist/bench/profile.js <file-or-dir>... [--top N]`
import { readFile, readdir, stat } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ROOT } from './targets.js'

interface CallFrame { functionName: string, url: string, lineNumber: number, columnNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }

export interface HotSpot { name: string, where: string, selfMs: number, share: number }

export async function summarise (files: string[], top = 20): Promise<{ totalMs: number, idleMs: number, spots: HotSpot[] }> {
  const self = new Map<string, { name: string, where: string, us: number }>()
  let total = 0
  let idle = 0
  for (const file of files) {
    const p = JSON.parse(await readFile(file, 'utf8')) as CpuProfile
    const byId = new Map(p.nodes.map(n => [n.id, n]))
    for (let i = 0; i < p.samples.length; i++) {
      const node = byId.get(p.samples[i])
      const dt = p.timeDeltas[i] ?? 0
      if (!node) continue
      total += dt
      const f = node.callFrame
      if (f.functionName === '(idle)') { idle += dt; continue }
      const url = f.url.replace(/^file:\/\//, '')
      const where = url ? `${url.startsWith(ROOT) ? relative(ROOT, url) : url}:${f.lineNumber + 1}` : ''
      const key = `${f.functionName}\0${where}`
      const e = self.get(key) ?? { name: f.functionName || '(anonymous)', where, us: 0 }
      e.us += dt
      self.set(key, e)
    }
  }
  const busy = total - idle
  const spots = [...self.values()].sort((a, b) => b.us - a.us).slice(0, top)
    .map(e => ({ name: e.name, where: e.where, selfMs: e.us / 1000, share: busy > 0 ? e.us / busy : 0 }))
  return { totalMs: total / 1000, idleMs: idle / 1000, spots }
}

export async function profileFiles (paths: string[]): Promise<string[]> {
  const out: string[] = []
  for (const p of paths) {
    if ((await stat(p)).isDirectory()) {
      for (const f of (await readdir(p)).sort()) if (f.endsWith('.cpuprofile')) out.push(join(p, f))
    } else {
      out.push(p)
    }
  }
  return out
}

export function formatSummary (s: { totalMs: number, idleMs: number, spots: HotSpot[] }): string {
  const lines = [
    `sampled ${(s.totalMs / 1000).toFixed(1)} s, idle ${(s.idleMs / 1000).toFixed(1)} s, busy ${((s.totalMs - s.idleMs) / 1000).toFixed(1)} s (main thread only)`,
    '',
    '| self ms | % of busy | function | location |',
    '| ---: | ---: | --- | --- |'
  ]
  for (const h of s.spots) lines.push(`| ${h.selfMs.toFixed(0)} | ${(h.share * 100).toFixed(1)} | \`${h.name}\` | ${h.where} |`)
  return lines.join('\n')
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2)
  const ti = args.indexOf('--top')
  const top = ti >= 0 ? Number(args.splice(ti, 2)[1]) : 25
  if (args.length === 0) {
    console.error('usage: node dist/bench/profile.js <file.cpuprofile|dir>... [--top N]')
    process.exit(2)
  }
  const files = await profileFiles(args)
  console.log(formatSummary(await summarise(files, top)))
}
