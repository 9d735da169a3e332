// The UDP socket under a peer connection gets wider buffers
// (src/net/socket-buffers.ts): a real Hyperswarm connection on a loopback testnet.
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { randomKey } from '../../src/crypto/volume-keys.js'
import { topicFor } from '../../src/net/capability.js'
import type HyperDHT from 'hyperdht'
import { widenSocketBuffers, SOCKET_BUFFER_BYTES } from '../../src/net/socket-buffers.js'
import { Harness, waitFor } from './helpers.js'

t.test('a connection\'s socket buffers are widened up to the kernel\'s limit', { timeout: 60_000 }, async t => {
  const h = await Harness.create(t)
  const key = randomKey()
  await h.network(key)
  const conns: HyperDHT.SecretStream[] = []
  h.raw(topicFor(key), c => conns.push(c.stream))
  await waitFor(() => conns.length >= 1, 30_000, 'a connection')
  const socket = conns[0].rawStream!.socket!
  const before = socket.getRecvBufferSize()
  widenSocketBuffers(conns[0])
  const rmemMax = Number((await readFile('/proc/sys/net/core/rmem_max', 'utf8')).trim())
  const wmemMax = Number((await readFile('/proc/sys/net/core/wmem_max', 'utf8')).trim())
  const recv = socket.getRecvBufferSize()
  const send = socket.getSendBufferSize()
  t.comment(`receive buffer ${before} -> ${recv} bytes, send ${send} (rmem_max ${rmemMax}, wmem_max ${wmemMax})`)
  // Linux reports twice the size set (its bookkeeping overhead), capped by the sysctl.
  t.ok(recv >= Math.min(SOCKET_BUFFER_BYTES, rmemMax), 'receive buffer as large as asked or as the kernel allows')
  t.ok(send >= Math.min(SOCKET_BUFFER_BYTES, wmemMax), 'send buffer too')
  if (rmemMax >= SOCKET_BUFFER_BYTES) t.ok(recv > before, 'wider than the default here')
})
