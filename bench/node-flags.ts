import { readFileSync } from 'node:fs'

// The V8 flags bin/disktro's shebang gives the daemon (`#!/usr/bin/env -S
// node FLAGS`): benchmarks that start `node <script>` pass the same ones, so
// they measure what a user's `npx disktro mount` runs.
export function daemonNodeFlags (bin: string): string[] {
  const first = readFileSync(bin, 'utf8').split('\n', 1)[0]
  const m = /^#!\S*env -S node(.*)$/.exec(first)
  return m ? m[1].trim().split(/\s+/).filter(f => f.length > 0) : []
}
