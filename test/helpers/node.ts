import { DisktroNode } from '../../src/node.js'
import { DEFAULT_CONFIG, type Config } from '../../src/config.js'
import { tempDir, PASSWORD } from './disktro.js'

interface Teardown { teardown (fn: () => unknown): void }

// A volume opened in-process, without a mount: the VFS and the store for
// tests that need no kernel.
export async function openNode (t: Teardown, o: { dataDir?: string, config?: Partial<Config>, logs?: string[] } = {}): Promise<DisktroNode> {
  const dataDir = o.dataDir ?? await tempDir(t)
  const node = await DisktroNode.open({
    dataDir,
    password: async () => PASSWORD,
    newPassword: async () => PASSWORD,
    config: { ...DEFAULT_CONFIG, ...o.config },
    offline: true,
    log: line => { o.logs?.push(line) }
  })
  t.teardown(() => node.close())
  return node
}
