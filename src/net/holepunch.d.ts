// Ambient types for the parts of hyperswarm / hyperdht (CommonJS, untyped)
// that src/net and its tests use. Checked against hyperswarm 4.17 and hyperdht 6.34.
declare module 'hyperdht' {
  import { EventEmitter } from 'node:events'

  namespace HyperDHT {
    interface KeyPair { publicKey: Buffer, secretKey: Buffer }
    interface Node { host: string, port: number }
    interface Options {
      bootstrap?: Node[]
      host?: string
      port?: number
      keyPair?: KeyPair
      ephemeral?: boolean
      firewalled?: boolean
    }
    // udx-native's socket: the buffer sizes are setsockopt SO_RCVBUF / SO_SNDBUF.
    interface UdxSocket {
      getRecvBufferSize (): number
      setRecvBufferSize (size: number): number
      getSendBufferSize (): number
      setSendBufferSize (size: number): number
    }
    // @hyperswarm/secret-stream: a streamx Duplex over a Noise session.
    interface SecretStream extends EventEmitter {
      readonly isInitiator: boolean
      readonly publicKey: Buffer
      readonly remotePublicKey: Buffer
      readonly handshakeHash: Buffer
      readonly rawStream: { remoteHost?: string | null, remotePort?: number, socket?: UdxSocket | null, on?: (event: 'data', fn: (d: Buffer) => void) => unknown } | null
      readonly destroyed: boolean
      write (data: Buffer): boolean
      // A buffer of `length` bytes that write() seals in place, without a copy, if
      // nothing else is allocated before it is written. Its contents are gone after.
      alloc? (length: number): Buffer
      end (): void
      destroy (err?: Error): void
    }
  }

  class HyperDHT extends EventEmitter {
    constructor (opts?: HyperDHT.Options)
    static keyPair (seed?: Buffer): HyperDHT.KeyPair
    readonly destroyed: boolean
    ready (): Promise<void>
    fullyBootstrapped (): Promise<void>
    address (): { host: string, port: number }
    destroy (opts?: { force?: boolean }): Promise<void>
  }

  export = HyperDHT
}

declare module 'hyperdht/testnet' {
  import HyperDHT from 'hyperdht'

  namespace createTestnet {
    interface Testnet {
      nodes: HyperDHT[]
      bootstrap: HyperDHT.Node[]
      destroy (): Promise<void>
    }
  }
  function createTestnet (size?: number, opts?: { host?: string, port?: number }): Promise<createTestnet.Testnet>
  export = createTestnet
}

declare module 'hyperswarm' {
  import { EventEmitter } from 'node:events'
  import HyperDHT from 'hyperdht'

  namespace Hyperswarm {
    interface Options {
      keyPair?: HyperDHT.KeyPair
      seed?: Buffer
      dht?: HyperDHT
      bootstrap?: HyperDHT.Node[]
      maxPeers?: number
      // Return true to refuse a peer; hyperswarm then bans it for the swarm's life.
      firewall?: (remotePublicKey: Buffer, payload: unknown) => boolean
    }
    interface PeerInfo { publicKey: Buffer, client: boolean, banned: boolean }
    interface Discovery {
      refresh (opts?: { client?: boolean, server?: boolean }): Promise<boolean>
      flushed (): Promise<boolean>
      destroy (): Promise<void>
    }
  }

  class Hyperswarm extends EventEmitter {
    constructor (opts?: Hyperswarm.Options)
    readonly keyPair: HyperDHT.KeyPair
    readonly dht: HyperDHT
    readonly connections: Set<HyperDHT.SecretStream>
    readonly destroyed: boolean
    join (topic: Buffer, opts?: { client?: boolean, server?: boolean, onerror?: (err: unknown) => void }): Hyperswarm.Discovery
    flush (): Promise<boolean>
    destroy (opts?: { force?: boolean }): Promise<void>
    on (event: 'connection', listener: (conn: HyperDHT.SecretStream, info: Hyperswarm.PeerInfo) => void): this
    on (event: string, listener: (...args: any[]) => void): this
  }

  export = Hyperswarm
}
