import type HyperDHT from 'hyperdht'

// Socket buffers of the UDP socket a peer connection runs over, widened from
// what they are otherwise (getsockopt reported 2 MiB here): a replica stream of 1 MiB
// records arrives faster than a busy event loop reads it, and every datagram
// the socket buffer cannot hold is lost and sent again (UDX recovers, but a
// loss it detects only by timeout stalls the stream for about a second).
// QUIC stacks do the same. The kernel caps the size at net.core.rmem_max /
// wmem_max (4 MiB on this project's machines, 208 KiB on a stock Debian);
// failures are ignored.
export const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024

const widened = new WeakSet<object>()

export function widenSocketBuffers (stream: HyperDHT.SecretStream, bytes = SOCKET_BUFFER_BYTES): void {
  const socket = stream.rawStream?.socket
  if (!socket || widened.has(socket)) return
  widened.add(socket)
  try {
    if (socket.getRecvBufferSize() < bytes) socket.setRecvBufferSize(bytes)
    if (socket.getSendBufferSize() < bytes) socket.setSendBufferSize(bytes)
  } catch {}
}
