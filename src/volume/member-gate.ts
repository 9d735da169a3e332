import type { MemberGate } from '../net/peer-connection.js'
import type { MemberSet } from './member-set.js'

// What a connection checks of a peer right after HELLO (net/peer-connection.ts):
// a certificate for the identity it authenticated with, for the role it
// claimed, and not revoked. A storage-only member that held our chunks when
// we first ran with certificates is certified now (migration; member-set.ts).
export function memberGate (members: MemberSet, selfId: string): MemberGate {
  return {
    offer: () => ({ cert: members.certOf(selfId) ?? Buffer.alloc(0), records: members.all() }),
    admit (id, role, cert, records) {
      if (!members.checking) return null
      if (cert.length > 0) members.addAll([cert])
      if (members.standing(id) === 'unknown' && role === 'storage') members.certifyGrandfathered(id)
      const standing = members.standing(id)
      if (standing === 'revoked') return 'its membership was revoked'
      if (standing === 'unknown') return cert.length > 0 ? 'its certificate does not verify or names another identity' : 'it has no certificate'
      const certified = members.roleOf(id)
      if (certified !== role) return `it is certified as ${certified ?? 'nothing'} and claims ${role}`
      members.addAll(records)
      return null
    },
    held: () => members.all(),
    learn: records => { members.addAll(records) }
  }
}
